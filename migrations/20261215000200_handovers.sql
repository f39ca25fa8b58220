-- Counsellors' transfers and consults (issue 24).
--
-- A handover is one transfer a counsellor asked for: to a colleague (`to_id`) or to a helpline's
-- queue (`helpline`), cold (carried out at once) or warm (`warm` = 1: it waits until the briefed
-- colleague `to_id` accepts). `reason` is free text, sealed (`handovers.reason`).
CREATE TABLE handovers (
    id          TEXT PRIMARY KEY,
    contact_id  TEXT NOT NULL,
    from_id     TEXT NOT NULL,
    to_id       TEXT,
    helpline    TEXT,
    reason      TEXT,
    warm        BIGINT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    decided_at  BIGINT
);
CREATE INDEX handovers_contact ON handovers (contact_id, created_at);

-- A consult: a message between two counsellors about a contact, which the caller never sees (it is
-- not a message of the conversation). `body` is sealed (`consults.body`).
CREATE TABLE consults (
    id          TEXT PRIMARY KEY,
    contact_id  TEXT NOT NULL,
    from_id     TEXT NOT NULL,
    to_id       TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX consults_contact ON consults (contact_id, created_at);
