-- Per-helpline deadlines of the case stages after `open` (the case file's deadline stays in
-- helplines.case_file_due_ms). A stage without a row here takes the default of src/casework.rs.
-- Portable SQL: the same file runs on SQLite and PostgreSQL.
CREATE TABLE case_stage_deadlines (
    helpline   TEXT NOT NULL REFERENCES helplines (name),
    stage      TEXT NOT NULL CHECK (stage IN ('initial_assessment', 'comprehensive_assessment', 'intervention_plan', 'monitoring')),
    due_ms     BIGINT NOT NULL CHECK (due_ms > 0),
    updated_at BIGINT NOT NULL,
    updated_by TEXT,
    PRIMARY KEY (helpline, stage)
);
