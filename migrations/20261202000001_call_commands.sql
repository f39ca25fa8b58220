-- Durable commands to telephone exchanges (connect, cancel, hold, unhold, hangup): stored in the
-- transaction of the step that caused them, delivered on the exchange's socket and in webhook
-- answers until the exchange acknowledges them (`command_ack`), redelivered after a reconnect or a
-- restart, never again once acknowledged. A command made stale by a later one (a newer `connect`,
-- a `cancel`, the call re-offered or ended) is superseded and no longer delivered.
-- Portable SQL: SQLite and PostgreSQL.

CREATE TABLE telephony_commands (
    id            TEXT PRIMARY KEY,                -- the command id (UUIDv7: ordered by creation)
    gateway_id    TEXT NOT NULL REFERENCES gateways (id),
    call_id       TEXT NOT NULL,                   -- the exchange's id of the call
    contact_id    TEXT REFERENCES contacts (id),
    kind          TEXT NOT NULL CHECK (kind IN ('connect', 'cancel', 'hold', 'unhold', 'hangup')),
    frame         TEXT NOT NULL,                   -- the JSON frame sent to the exchange (ids and extension, no conversation text)
    created_at    BIGINT NOT NULL,
    acked_at      BIGINT,                          -- the exchange acknowledged it: never sent again
    superseded_at BIGINT                           -- made stale before it was acknowledged: not sent any more
);
CREATE INDEX telephony_commands_pending ON telephony_commands (gateway_id, created_at)
    WHERE acked_at IS NULL AND superseded_at IS NULL;
CREATE INDEX telephony_commands_call ON telephony_commands (gateway_id, call_id);

-- Exchanges that acknowledge commands. One that never sent a `command_ack` (an adapter written
-- before acknowledgements existed) has each command marked acknowledged once it was handed over
-- (as before: at most once, but now kept across restarts until handed over).
ALTER TABLE gateways ADD COLUMN acks_commands BOOLEAN NOT NULL DEFAULT FALSE;
