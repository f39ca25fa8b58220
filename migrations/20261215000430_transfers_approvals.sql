-- Transfers of a case between case managers, accepted or refused by the one who receives it, and the
-- supervisor's approval of the individual plan and of the closure (issue 26). Notes and comments are
-- free text: sealed at rest (places `case_transfers.note`, `case_transfers.comment`,
-- `case_approvals.note`, `case_approvals.comment`, keyed by `id`).
CREATE TABLE case_transfers (
    id           TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL REFERENCES cases (id),
    from_user_id TEXT REFERENCES users (id),
    to_user_id   TEXT NOT NULL REFERENCES users (id),
    note         TEXT,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'refused')),
    requested_by TEXT NOT NULL REFERENCES users (id),
    requested_at BIGINT NOT NULL,
    comment      TEXT,
    decided_at   BIGINT
);
CREATE INDEX case_transfers_to ON case_transfers (to_user_id, status);
CREATE INDEX case_transfers_case ON case_transfers (case_id, requested_at);

CREATE TABLE case_approvals (
    id           TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL REFERENCES cases (id),
    kind         TEXT NOT NULL CHECK (kind IN ('plan', 'closure')),
    status       TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'returned')),
    note         TEXT,
    requested_by TEXT NOT NULL REFERENCES users (id),
    requested_at BIGINT NOT NULL,
    comment      TEXT,
    decided_by   TEXT REFERENCES users (id),
    decided_at   BIGINT
);
CREATE INDEX case_approvals_case ON case_approvals (case_id, requested_at);
