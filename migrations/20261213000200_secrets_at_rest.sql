-- Secrets at rest (docs/security.md, "Keys and sealing"). Keys live in the key file, never here.

-- A keyed check of each key the database was used with (`data:d1`, `signing:s1`, `audit:a1`,
-- `hmac:caller_number_hmac`): HMAC-SHA256 of a constant under the key. It reveals nothing of the key
-- and lets the server refuse a key file that is not this database's. `audit-chain:<kid>`: the audit
-- chain was re-keyed with that audit key.
CREATE TABLE key_checks (
    name       TEXT PRIMARY KEY,
    mac        TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Where the audit chain starts after old lines were pruned: lines up to `seq` are gone, `hash` was
-- line `seq`'s hash, `mac` is the audit key's HMAC over both (a database writer cannot make one).
CREATE TABLE audit_anchor (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL,
    mac  TEXT NOT NULL,
    at   BIGINT NOT NULL
);
