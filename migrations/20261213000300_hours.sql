-- Hours, waiting and wrap-up (issue 22), first half: opening hours, messages and callbacks.

-- A helpline's opening hours: the JSON of `routing::hours::Hours` (IANA time zone, weekly spans,
-- holidays). A helpline without a row is open every hour of every day (24/7).
CREATE TABLE helpline_hours (
    helpline   TEXT PRIMARY KEY REFERENCES helplines (name),
    hours      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The number a caller asked to be called back on, kept only while the callback needs it: deleted in
-- the routing step that ends its contact (and by retention with the contact, should one be left).
-- Written and read through one store function each (`store::callbacks`).
CREATE TABLE callback_numbers (
    contact_id TEXT PRIMARY KEY,
    number     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
