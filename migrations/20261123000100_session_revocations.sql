-- Logout: access tokens of an account issued before `revoked_at` (ms) are refused.
CREATE TABLE session_revocations (
    user_id    TEXT PRIMARY KEY REFERENCES users (id),
    revoked_at BIGINT NOT NULL
);
