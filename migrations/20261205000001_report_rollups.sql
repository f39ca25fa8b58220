-- Hourly roll-ups for reports (src/rollup.rs): a year of contacts reports in well under a second.
-- An hour is rolled up once it is settled (over, and no contact queued in it still open); its rows are
-- exactly what the live queries give for that hour. A late change to a contact of a rolled-up hour (a form
-- submitted, an escalation) deletes the hour's rows, and it is rolled up again.

-- The hours rolled up (UTC hour starts, ms). Hours not listed are computed live.
CREATE TABLE report_rollup_hours (
    hour      BIGINT PRIMARY KEY,
    rolled_at BIGINT NOT NULL
);

-- metrics::TALLY_SQL per (hour, helpline, channel, language), for settled hours (nothing waiting or open).
CREATE TABLE report_hour_tallies (
    hour               BIGINT NOT NULL,
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
    PRIMARY KEY (hour, helpline, channel, language)
);

-- The same per (hour, helpline, category of the submitted contact form).
CREATE TABLE report_hour_categories (
    hour               BIGINT NOT NULL,
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
    PRIMARY KEY (hour, helpline, category)
);

-- Occupancy's two sums per (hour, counsellor): metrics::occupancy_series is additive over both.
CREATE TABLE report_hour_occupancy (
    hour          BIGINT NOT NULL,
    counsellor_id TEXT NOT NULL,
    busy_ms       BIGINT NOT NULL,
    staffed_ms    BIGINT NOT NULL,
    PRIMARY KEY (hour, counsellor_id)
);

-- Reports count escalations per contact.
CREATE INDEX escalations_contact ON escalations (contact_id);
