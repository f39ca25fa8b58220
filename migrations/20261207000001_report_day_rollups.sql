-- Daily roll-ups over the hourly ones (src/rollup.rs): a UTC day whose 24 hours are all rolled up is also
-- summed per day, so a year by day reads 365 rows per group instead of 8,760. A day's rows are exactly the
-- sums of its hours' rows; they are written once all its hours are (a database rolled up before this
-- migration gets its days on the next roll-up run), and dropped with any of its hours (a late form or
-- escalation, a new answer target). Portable SQL: SQLite and PostgreSQL.

-- The UTC days rolled up (day starts, ms). A day is listed only while all 24 of its hours are.
CREATE TABLE report_rollup_days (
    day       BIGINT PRIMARY KEY,
    rolled_at BIGINT NOT NULL
);

CREATE TABLE report_day_tallies (
    day                BIGINT NOT NULL,
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
    PRIMARY KEY (day, helpline, channel, language)
);

CREATE TABLE report_day_categories (
    day                BIGINT NOT NULL,
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
    PRIMARY KEY (day, helpline, category)
);

CREATE TABLE report_day_occupancy (
    day           BIGINT NOT NULL,
    counsellor_id TEXT NOT NULL,
    busy_ms       BIGINT NOT NULL,
    staffed_ms    BIGINT NOT NULL,
    PRIMARY KEY (day, counsellor_id)
);
