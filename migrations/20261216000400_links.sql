-- Continuity between contacts (issue 24).
--
-- A counsellor links a new contact to an earlier one (the same person again): both ids, who linked
-- them and when. Ids and a time only: nothing to seal.
CREATE TABLE contact_links (
    contact_id  TEXT NOT NULL,
    linked_id   TEXT NOT NULL,
    linked_by   TEXT NOT NULL,
    linked_at   BIGINT NOT NULL,
    PRIMARY KEY (contact_id, linked_id)
);
CREATE INDEX contact_links_linked ON contact_links (linked_id);

-- A chat caller's anonymous return code: only its keyed hash (HMAC-SHA256 under the caller-number
-- key), one row per contact it was given for or used at. The code itself is never stored, and
-- nothing here identifies the caller: a code ties her contacts together only for whoever holds it.
CREATE TABLE return_codes (
    code_hash   TEXT NOT NULL,
    contact_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (code_hash, contact_id)
);
CREATE INDEX return_codes_contact ON return_codes (contact_id);
