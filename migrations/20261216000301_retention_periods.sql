-- Retention for every class of data, with periods per helpline (`helpline retention set`; see
-- docs/deployment.md, "Retention"). A NULL period keeps that class (conversations: the server's
-- `--retention-days`, if any). Cases: closed cases only, counted from their last change (an open case
-- is on legal hold, and so is every contact linked to it). Portable SQL: SQLite and PostgreSQL.
CREATE TABLE retention_periods (
    helpline           TEXT PRIMARY KEY REFERENCES helplines (name),
    conversations_days BIGINT,
    forms_days         BIGINT,
    calls_days         BIGINT,
    cases_days         BIGINT,
    updated_at         BIGINT NOT NULL
);
-- When a closed case's content (person, entries, tasks, referrals, transfers, approvals, links) was
-- deleted by retention; the row stays (number, helpline, stage, times: reports).
ALTER TABLE cases ADD COLUMN purged_at BIGINT;
