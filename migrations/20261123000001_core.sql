-- Core schema: helplines, accounts, contacts, messages, offers, events, audit.
-- Portable SQL: the same file runs on SQLite and PostgreSQL. Times are BIGINT
-- milliseconds since the Unix epoch; every integer is BIGINT so both drivers
-- decode it as i64; ids are TEXT (UUIDv7 for rows we create).

CREATE TABLE helplines (
    name            TEXT PRIMARY KEY,
    display_name    TEXT NOT NULL,
    languages       TEXT NOT NULL,             -- comma-separated language codes, first is the default
    ring_timeout_ms BIGINT NOT NULL DEFAULT 8000,
    backup_after_ms BIGINT NOT NULL DEFAULT 10000,
    sla_at_risk_ms  BIGINT NOT NULL DEFAULT 10000,
    sla_target_ms   BIGINT NOT NULL DEFAULT 15000,
    caller_grace_ms BIGINT NOT NULL DEFAULT 120000,
    service_level_target_pct BIGINT NOT NULL DEFAULT 90
);

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    username         TEXT NOT NULL UNIQUE,
    display_name     TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('counsellor', 'supervisor', 'admin')),
    helplines        TEXT NOT NULL DEFAULT '',  -- comma-separated helpline names served first-line
    backup_helplines TEXT NOT NULL DEFAULT '',  -- comma-separated helpline names backed up
    languages        TEXT NOT NULL DEFAULT '',  -- comma-separated language codes
    capacity         BIGINT NOT NULL DEFAULT 3,
    status           TEXT NOT NULL DEFAULT 'offline' CHECK (status IN ('available', 'away', 'offline')),
    disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT NOT NULL
);

CREATE TABLE contacts (
    id                TEXT PRIMARY KEY,
    channel           TEXT NOT NULL DEFAULT 'chat',
    helpline          TEXT NOT NULL REFERENCES helplines (name),
    language          TEXT NOT NULL,
    priority          BIGINT NOT NULL DEFAULT 0,
    state             TEXT NOT NULL CHECK (state IN ('queued', 'active', 'ended', 'abandoned')),
    resume_token_hash TEXT NOT NULL UNIQUE,    -- SHA-256 of the caller's resume token; the token itself is never stored
    queued_at         BIGINT NOT NULL,
    first_offered_at  BIGINT,
    answered_at       BIGINT,
    ended_at          BIGINT,
    counsellor_id     TEXT REFERENCES users (id),
    end_reason        TEXT
);
CREATE INDEX contacts_open ON contacts (state, queued_at) WHERE state IN ('queued', 'active');
CREATE INDEX contacts_counsellor ON contacts (counsellor_id) WHERE state = 'active';

CREATE TABLE messages (
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    seq        BIGINT NOT NULL,                -- per conversation, from 1, gap-free
    sender     TEXT NOT NULL CHECK (sender IN ('caller', 'counsellor', 'system')),
    sender_id  TEXT,                           -- the counsellor's user id; NULL for the caller
    client_id  TEXT NOT NULL,                  -- the sender's idempotency key
    body       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (contact_id, seq),
    UNIQUE (contact_id, sender, client_id)
);

CREATE TABLE offers (
    id            TEXT PRIMARY KEY,
    contact_id    TEXT NOT NULL REFERENCES contacts (id),
    counsellor_id TEXT NOT NULL REFERENCES users (id),
    offered_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    as_backup     BOOLEAN NOT NULL DEFAULT FALSE,
    outcome       TEXT CHECK (outcome IN ('accepted', 'declined', 'expired', 'revoked')),
    responded_at  BIGINT
);
CREATE INDEX offers_contact ON offers (contact_id, offered_at);

-- Everything that happened to a contact, in order: the raw material of reports.
CREATE TABLE contact_events (
    id            TEXT PRIMARY KEY,            -- UUIDv7: sorts by creation time
    contact_id    TEXT NOT NULL REFERENCES contacts (id),
    at            BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    counsellor_id TEXT,
    detail        TEXT
);
CREATE INDEX contact_events_contact ON contact_events (contact_id, at);

-- Counsellor status changes, for occupancy and staffing reports.
CREATE TABLE status_changes (
    id        TEXT PRIMARY KEY,
    user_id   TEXT NOT NULL REFERENCES users (id),
    at        BIGINT NOT NULL,
    status    TEXT NOT NULL,
    reason    TEXT
);

-- Who did what to accounts and cases.
CREATE TABLE audit_log (
    id        TEXT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,                   -- user id, or 'cli'
    action    TEXT NOT NULL,
    target    TEXT,
    detail    TEXT
);

-- Secrets the server generates once and keeps (the JWT key when none is configured).
CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
