-- Quarter-hour roll-ups beside the hourly ones (src/rollup.rs). Every UTC offset in use is a whole number
-- of quarter hours (+05:30, +05:45, -09:30, +12:45...): a report's bucket bounds at such an offset cut
-- hours, never quarters, so a cut hour is read from its four quarters instead of being computed live
-- (a year by day at +05:30 cut 365 hours, each a live query with a day of look-back for occupancy).
-- A rolled-up hour (report_rollup_hours) has its quarter rows, written and dropped with its hour rows;
-- a quarter's rows are exactly what the live queries give for it, and an hour's are the sums of its four.

CREATE TABLE report_quarter_tallies (
    quarter            BIGINT NOT NULL,
    helpline           TEXT NOT NULL,
    channel            TEXT NOT NULL,
    language           TEXT NOT NULL,
    offered            BIGINT NOT NULL,
    abandoned          BIGINT NOT NULL,
    abandoned_short    BIGINT NOT NULL,
    answered           BIGINT NOT NULL,
    answered_in_target BIGINT NOT NULL,
    answer_ms_sum      BIGINT NOT NULL,
    handled            BIGINT NOT NULL,
    handle_ms_sum      BIGINT NOT NULL,
    transfers          BIGINT NOT NULL,
    escalations        BIGINT NOT NULL,
    PRIMARY KEY (quarter, helpline, channel, language)
);

CREATE TABLE report_quarter_categories (
    quarter            BIGINT NOT NULL,
    helpline           TEXT NOT NULL,
    category           TEXT NOT NULL,
    offered            BIGINT NOT NULL,
    abandoned          BIGINT NOT NULL,
    abandoned_short    BIGINT NOT NULL,
    answered           BIGINT NOT NULL,
    answered_in_target BIGINT NOT NULL,
    answer_ms_sum      BIGINT NOT NULL,
    handled            BIGINT NOT NULL,
    handle_ms_sum      BIGINT NOT NULL,
    transfers          BIGINT NOT NULL,
    escalations        BIGINT NOT NULL,
    PRIMARY KEY (quarter, helpline, category)
);

CREATE TABLE report_quarter_occupancy (
    quarter       BIGINT NOT NULL,
    counsellor_id TEXT NOT NULL,
    busy_ms       BIGINT NOT NULL,
    staffed_ms    BIGINT NOT NULL,
    PRIMARY KEY (quarter, counsellor_id)
);

-- Hours rolled up before this migration have no quarters: they are all rolled up again (by the server in
-- the background, a month per run, or at once with `helpline rollup`); until then reports count them live.
DELETE FROM report_day_tallies;
DELETE FROM report_day_categories;
DELETE FROM report_day_occupancy;
DELETE FROM report_rollup_days;
DELETE FROM report_hour_tallies;
DELETE FROM report_hour_categories;
DELETE FROM report_hour_occupancy;
DELETE FROM report_rollup_hours;
