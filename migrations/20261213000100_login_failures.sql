-- Failed logins, counted in the database so every node sees every failure: a guesser who spreads
-- tries over N nodes gets no more of them than on one (issue 20). One row per failure, kept while it
-- counts (the account's window, 15 minutes); `address` is the client network, blanked ('') once the
-- pair signs in successfully (the failure still counts towards the account's delay, not the pair's).
-- `account_hash` is the keyed hash of the normalised name typed, as in `login_lockouts`.
-- Lockouts that have ended stay in `login_lockouts` for a day (so the next lockout of the pair lasts
-- twice as long on every node); only those in force are shown or enforced.
-- Portable SQL: the same file runs on SQLite (>= 3.35) and PostgreSQL.
CREATE TABLE login_failures (
    account_hash TEXT NOT NULL,
    address TEXT NOT NULL,
    failed_at BIGINT NOT NULL
);
CREATE INDEX login_failures_pair ON login_failures (account_hash, address, failed_at);
CREATE INDEX login_failures_at ON login_failures (failed_at);
