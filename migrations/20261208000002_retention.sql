-- Retention: when the conversation (messages) of a contact without a case was deleted after the
-- retention period (`--retention-days`). The contact row stays (times, helpline, outcome: reports).
-- Portable SQL: the same file runs on SQLite (>= 3.35) and PostgreSQL.
ALTER TABLE contacts ADD COLUMN purged_at BIGINT;
CREATE INDEX contacts_ended_at ON contacts (ended_at) WHERE purged_at IS NULL;
