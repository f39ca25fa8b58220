-- Stage forms as data (issue 26): a helpline's own definitions of the structured content of case
-- stages (assessments, the individual plan, monitoring visits, closure), JSON, set by admins; a
-- helpline without its own uses the built-in ones (`data/stage_forms.json`). Definitions hold no
-- personal data (the filled-in forms are case entries, sealed).
CREATE TABLE stage_forms (
    helpline   TEXT NOT NULL REFERENCES helplines (name),
    form       TEXT NOT NULL,
    definition TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (helpline, form)
);

-- Case entries of two more kinds: `reason` (why a case was opened without a contact) and `form` (a
-- stage form filled in). The kind column is rebuilt with the wider CHECK (as the cases migration did
-- for users.role: SQLite and PostgreSQL drop a column's own CHECK with the column).
ALTER TABLE case_entries ADD COLUMN kind_v2 TEXT NOT NULL DEFAULT 'note'
    CHECK (kind_v2 IN ('assessment', 'note', 'referral', 'stage', 'reason', 'form'));
UPDATE case_entries SET kind_v2 = kind;
ALTER TABLE case_entries DROP COLUMN kind;
ALTER TABLE case_entries RENAME COLUMN kind_v2 TO kind;
