-- Logins: lockouts of (account, address) pairs after too many failed passwords, and the second factor
-- (TOTP, RFC 6238) of staff with its single-use recovery codes.
-- Portable SQL: the same file runs on SQLite (>= 3.35) and PostgreSQL.

-- The account is the keyed hash of the normalised name typed (`auth::keyed::login_name_hash`): a name
-- that is no account (perhaps a password typed in the wrong field) is never stored. `user_id` names
-- the account when there is one.
CREATE TABLE login_lockouts (
    account_hash TEXT NOT NULL,
    address TEXT NOT NULL,
    user_id TEXT,
    locked_at BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    strikes INTEGER NOT NULL,
    PRIMARY KEY (account_hash, address)
);
CREATE INDEX login_lockouts_until ON login_lockouts (locked_until);

-- The TOTP secret (base32) is set at enrolment and counts once confirmed with a code (`totp_enabled`);
-- `totp_last_step` is the 30-second step of the last code accepted, so no code is accepted twice.
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

-- Recovery codes are stored as SHA-256 hashes (they are random, like refresh tokens); each is used once.
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
