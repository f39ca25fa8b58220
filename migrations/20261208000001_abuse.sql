-- Abusive contacts (flags, blocks of a caller's keyed identifier, routing to senior counsellors),
-- refresh tokens, and the audit log's hash chain.
-- Portable SQL: the same file runs on SQLite (>= 3.35) and PostgreSQL.

-- Senior counsellors take the contacts of callers a supervisor routed to them instead of blocking.
ALTER TABLE users ADD COLUMN senior BOOLEAN NOT NULL DEFAULT FALSE;

-- A chat's caller identifier: HMAC-SHA256 (server key) of the client network (IPv4 address or IPv6 /64),
-- so a supervisor can block it from a flagged contact without anyone seeing the address. Calls keep
-- theirs in calls.caller_hash.
ALTER TABLE contacts ADD COLUMN caller_hash TEXT;
-- Routed only to senior counsellors (the caller is under a `senior` block).
ALTER TABLE contacts ADD COLUMN senior_only BOOLEAN NOT NULL DEFAULT FALSE;

-- A counsellor's flag: this contact was abusive. One per contact.
CREATE TABLE contact_flags (
    id         TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL UNIQUE REFERENCES contacts (id),
    helpline   TEXT NOT NULL,
    flagged_by TEXT NOT NULL REFERENCES users (id),
    reason     TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX contact_flags_helpline ON contact_flags (helpline, at);

-- A block of a caller identifier (keyed hash only), made from a flagged contact, for one helpline,
-- until `expires_at` or until lifted. Mode `block`: refused calmly; `senior`: routed to senior
-- counsellors only.
CREATE TABLE caller_blocks (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('address', 'number')),
    identifier_hash TEXT NOT NULL,
    mode            TEXT NOT NULL CHECK (mode IN ('block', 'senior')),
    helpline        TEXT NOT NULL,
    contact_id      TEXT NOT NULL REFERENCES contacts (id),
    reason          TEXT NOT NULL,
    reviewer        TEXT NOT NULL REFERENCES users (id),
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    lifted_at       BIGINT,
    lifted_by       TEXT REFERENCES users (id),
    lift_reason     TEXT
);
CREATE INDEX caller_blocks_identifier ON caller_blocks (identifier_hash, helpline, expires_at);

-- Contacts refused by a block (no identifier kept here: the block names it).
CREATE TABLE blocked_attempts (
    id       TEXT PRIMARY KEY,
    block_id TEXT NOT NULL REFERENCES caller_blocks (id),
    channel  TEXT NOT NULL,
    call_id  TEXT,
    at       BIGINT NOT NULL
);
CREATE INDEX blocked_attempts_block ON blocked_attempts (block_id, at);

-- Refresh tokens: opaque, stored as SHA-256, single use. Each use rotates the token within its
-- family; a used token presented again revokes the whole family (it was stolen or replayed).
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- The audit log's hash chain: `seq` is the row's place (1, 2, …), `hash` = SHA-256 over the previous
-- row's hash and this row's canonical content. Rows written before this migration are chained at
-- the next start (in id order).
ALTER TABLE audit_log ADD COLUMN seq BIGINT;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_log_seq ON audit_log (seq);
