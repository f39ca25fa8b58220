-- Canned responses (issue 23): short replies a counsellor inserts in the console, per helpline and
-- language. Staff text written by supervisors, not caller data: not sealed.
CREATE TABLE canned_responses (
    id         TEXT PRIMARY KEY,
    helpline   TEXT NOT NULL REFERENCES helplines (name),
    language   TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX canned_responses_by_helpline ON canned_responses (helpline, language);
