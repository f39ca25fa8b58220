-- Messaging channels (issue 28): SMS through Kannel, and later messaging apps.
--
-- A messaging channel is one provider account that reaches one helpline (`helpline channel add`).
-- `token` is the provider's credential (Kannel's sendsms password, a bot token) and `inbound_secret`
-- what the provider must present on its way in (HTTP Basic password, a webhook's secret token):
-- both sealed (`messaging_channels.token`, `messaging_channels.inbound_secret`). A removed channel
-- keeps its row (`removed_at`) so its conversations still name it.
CREATE TABLE messaging_channels (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    helpline        TEXT NOT NULL,
    language        TEXT NOT NULL,
    public_url      TEXT NOT NULL,
    api_base        TEXT NOT NULL,
    account         TEXT,
    sender          TEXT,
    token           TEXT NOT NULL,
    inbound_secret  TEXT NOT NULL,
    idle_limit_ms   BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    removed_at      BIGINT
);

-- A messaging contact's conversation: the channel it came in on, the keyed hash of the sender's
-- address (repeat senders; never the address itself in clear), the address a reply goes to, sealed
-- (`channel_conversations.address`; NULL once forgotten), and the last activity either way.
CREATE TABLE channel_conversations (
    contact_id      TEXT PRIMARY KEY,
    channel_id      TEXT NOT NULL,
    sender_hash     TEXT NOT NULL,
    address         TEXT,
    last_activity   BIGINT NOT NULL,
    started_at      BIGINT NOT NULL,
    closed_at       BIGINT
);
CREATE INDEX channel_conversations_sender ON channel_conversations (channel_id, sender_hash, closed_at);
CREATE INDEX channel_conversations_open ON channel_conversations (closed_at, last_activity);

-- Inbound messages by the provider's own id: a provider's retry is recognised and stored once.
CREATE TABLE channel_inbound (
    channel_id      TEXT NOT NULL,
    provider_id     TEXT NOT NULL,
    contact_id      TEXT NOT NULL,
    received_at     BIGINT NOT NULL,
    PRIMARY KEY (channel_id, provider_id)
);

-- The durable outbox: one row per counsellor message of a messaging conversation, written before the
-- first attempt to send it and kept through retries. `state`: pending (to send at `next_at`), sent
-- (the provider took it), delivered, read, failed (finally). `attempts` counts tries begun.
CREATE TABLE channel_outbox (
    contact_id      TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    channel_id      TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'delivered', 'read', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_at         BIGINT NOT NULL,
    provider_ref    TEXT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (contact_id, seq)
);
CREATE INDEX channel_outbox_due ON channel_outbox (state, next_at);
