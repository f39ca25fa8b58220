-- The admin page (issue 27). One-time password reset codes: an admin's reset gives the account a code
-- (typed, or carried in a link's fragment) that sets a new password once, before it expires. Only the
-- code's SHA-256 is kept; a new reset replaces the account's earlier unused codes.
CREATE TABLE password_resets (
    code_hash  TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX password_resets_user ON password_resets (user_id);

-- A helpline's own contact-form categories (JSON: [{code, label}]), set by admins; a helpline without
-- a row uses the built-in ones (`casework::rules::categories`). Staff vocabulary, no personal data.
CREATE TABLE helpline_categories (
    helpline   TEXT PRIMARY KEY REFERENCES helplines (name),
    categories TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
