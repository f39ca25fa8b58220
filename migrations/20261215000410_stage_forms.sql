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
