-- Telephony: counsellors' extensions, per-helpline call settings, the dialled-number map, the
-- exchanges (gateways) and their service tokens, call records, and the exchanges' event log.
-- Portable SQL: SQLite and PostgreSQL. Caller numbers are never stored: only a keyed hash
-- (HMAC-SHA256, key in server_secrets) and at most the last two digits.

ALTER TABLE users ADD COLUMN extension TEXT;             -- phone extension; NULL: never offered calls

ALTER TABLE helplines ADD COLUMN chat_while_on_call BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE helplines ADD COLUMN calls_first BOOLEAN NOT NULL DEFAULT TRUE;

-- Which helpline a dialled number reaches. '*' is the default for numbers not listed.
CREATE TABLE dialled_numbers (
    number   TEXT PRIMARY KEY,
    helpline TEXT NOT NULL REFERENCES helplines (name)
);

CREATE TABLE gateways (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,             -- SHA-256 of the service token; the token is shown once
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- One row per call (a contact with channel 'call'). Times are the exchange's.
CREATE TABLE calls (
    contact_id   TEXT PRIMARY KEY REFERENCES contacts (id),
    gateway_id   TEXT REFERENCES gateways (id),  -- NULL for a call recorded offline by a counsellor
    call_id      TEXT NOT NULL,                  -- the exchange's id of the call
    dialled      TEXT,                           -- the helpline number dialled (not the caller's)
    caller_hash  TEXT,                           -- HMAC-SHA256 of the caller's number; NULL if withheld
    caller_last2 TEXT,                           -- last two digits, for display
    offered_at   BIGINT NOT NULL,                -- the call reached the exchange's queue
    answered_at  BIGINT,                         -- the counsellor's phone leg picked up
    ended_at     BIGINT,
    ended_by     TEXT,
    outcome      TEXT CHECK (outcome IN ('answered', 'abandoned', 'abandoned_short', 'missed', 'transferred')),
    wait_ms      BIGINT,
    talk_ms      BIGINT,
    offline      BOOLEAN NOT NULL DEFAULT FALSE, -- recorded by a counsellor after the fact
    UNIQUE (gateway_id, call_id)
);
CREATE INDEX calls_caller ON calls (caller_hash, offered_at);

-- Every event an exchange sent, once (a repeated event id is acknowledged again, nothing more).
-- Orphans are events for a call_id this server does not know.
CREATE TABLE telephony_events (
    gateway_id  TEXT NOT NULL REFERENCES gateways (id),
    event_id    TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    at          BIGINT NOT NULL,
    orphan      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (gateway_id, event_id)
);
CREATE INDEX telephony_events_call ON telephony_events (gateway_id, call_id);
