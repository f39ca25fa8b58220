-- Referrals with a life (issue 26): a case referred to a service of the registry, with a status
-- (sent → accepted | declined, accepted → completed), a due date and the provider's feedback.
-- `reason` and `feedback` are free text about a person: sealed at rest (`store::sealed`, places
-- `referrals.reason` and `referrals.feedback`, keyed by `id`).
CREATE TABLE referrals (
    id                  TEXT PRIMARY KEY,
    case_id             TEXT NOT NULL REFERENCES cases (id),
    service_id          TEXT NOT NULL REFERENCES services (id),
    status              TEXT NOT NULL CHECK (status IN ('sent', 'accepted', 'declined', 'completed')),
    reason              TEXT NOT NULL,
    due_at              BIGINT,
    feedback            TEXT,
    -- SHA-256 (hex) of the token the provider answers with (sent once, in the webhook); never the token.
    provider_token_hash TEXT NOT NULL,
    created_by          TEXT NOT NULL REFERENCES users (id),
    created_at          BIGINT NOT NULL,
    -- Who changed it last: a user id, or `provider`.
    updated_by          TEXT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX referrals_case ON referrals (case_id, created_at);

-- Where a service is told of a referral (admins set it): a URL the server POSTs a JSON notice to.
CREATE TABLE service_webhooks (
    service_id TEXT PRIMARY KEY REFERENCES services (id),
    url        TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
