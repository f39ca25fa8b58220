-- Tasks and follow-ups of a case with due dates (issue 26). `title` is free text about a person:
-- sealed at rest (`store::sealed`, place `case_tasks.title`, keyed by `id`).
CREATE TABLE case_tasks (
    id         TEXT PRIMARY KEY,
    case_id    TEXT NOT NULL REFERENCES cases (id),
    title      TEXT NOT NULL,
    -- Who does it (None: the case's case manager).
    owner_id   TEXT REFERENCES users (id),
    due_at     BIGINT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('open', 'done')),
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    done_by    TEXT REFERENCES users (id),
    done_at    BIGINT
);
CREATE INDEX case_tasks_case ON case_tasks (case_id, due_at);
CREATE INDEX case_tasks_open_due ON case_tasks (due_at) WHERE status = 'open';
