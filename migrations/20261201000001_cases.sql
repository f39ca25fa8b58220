-- Escalation and case management: contact forms, escalations, the placement services registry,
-- placements, case files (people, linked contacts, entries) and the audit log's source.
-- Portable SQL: the same file runs on SQLite (>= 3.35) and PostgreSQL.

-- A new role, `case_manager` (a social worker): the role column is rebuilt with a wider CHECK.
-- SQLite drops a column's own CHECK with the column; PostgreSQL drops it too.
ALTER TABLE users ADD COLUMN role_v2 TEXT NOT NULL DEFAULT 'counsellor'
    CHECK (role_v2 IN ('counsellor', 'supervisor', 'admin', 'case_manager'));
UPDATE users SET role_v2 = role;
ALTER TABLE users DROP COLUMN role;
ALTER TABLE users RENAME COLUMN role_v2 TO role;
-- The districts a case manager covers (comma-separated), used to assign new cases.
ALTER TABLE users ADD COLUMN districts TEXT NOT NULL DEFAULT '';

-- Where an audited action came from (client address, or the socket it arrived on).
ALTER TABLE audit_log ADD COLUMN source TEXT;
CREATE INDEX audit_log_target ON audit_log (target, at);

-- Case numbers (`FV-2026-000123`) and the case file deadline after an emergency placement, per helpline.
ALTER TABLE helplines ADD COLUMN case_prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE helplines ADD COLUMN case_file_due_ms BIGINT NOT NULL DEFAULT 259200000;

-- The counsellor's form about a contact: a JSON document, a draft until submitted.
CREATE TABLE contact_forms (
    contact_id    TEXT PRIMARY KEY REFERENCES contacts (id),
    helpline      TEXT NOT NULL,
    counsellor_id TEXT NOT NULL REFERENCES users (id),
    data          TEXT NOT NULL,               -- JSON: caller_type, age_group, gender, district, categories, summary, outcome, risk
    risk          TEXT,
    status        TEXT NOT NULL CHECK (status IN ('draft', 'submitted')),
    updated_at    BIGINT NOT NULL,
    submitted_at  BIGINT
);

CREATE TABLE escalations (
    id              TEXT PRIMARY KEY,
    contact_id      TEXT NOT NULL REFERENCES contacts (id),
    helpline        TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('emergency_placement', 'child_protection', 'emergency_services')),
    risk            TEXT NOT NULL CHECK (risk IN ('none', 'low', 'medium', 'high', 'imminent')),
    reason          TEXT NOT NULL,
    district        TEXT,
    counsellor_id   TEXT NOT NULL REFERENCES users (id),
    created_at      BIGINT NOT NULL,
    acknowledged_by TEXT REFERENCES users (id),
    acknowledged_at BIGINT,
    broadcast_at    BIGINT                      -- when the unacknowledged alert went to every supervisor
);
CREATE INDEX escalations_open ON escalations (created_at) WHERE acknowledged_at IS NULL;

CREATE TABLE services (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    district     TEXT NOT NULL,
    address      TEXT NOT NULL DEFAULT '',
    phone        TEXT NOT NULL DEFAULT '',
    admission_24_7 BOOLEAN NOT NULL DEFAULT FALSE,
    capacity     BIGINT NOT NULL CHECK (capacity >= 0),
    in_use       BIGINT NOT NULL DEFAULT 0,
    helplines    TEXT NOT NULL DEFAULT '',      -- comma-separated helplines that may place here
    created_at   BIGINT NOT NULL,
    CHECK (in_use >= 0 AND in_use <= capacity)
);

CREATE TABLE case_counters (
    helpline TEXT NOT NULL,
    year     BIGINT NOT NULL,
    last     BIGINT NOT NULL,
    PRIMARY KEY (helpline, year)
);

CREATE TABLE cases (
    id              TEXT PRIMARY KEY,
    number          TEXT NOT NULL UNIQUE,
    helpline        TEXT NOT NULL REFERENCES helplines (name),
    stage           TEXT NOT NULL CHECK (stage IN ('open', 'initial_assessment', 'comprehensive_assessment',
                                                   'intervention_plan', 'monitoring', 'closed')),
    person_label    TEXT NOT NULL,              -- pseudonym shown everywhere
    district        TEXT,
    opened_by       TEXT NOT NULL REFERENCES users (id),
    case_manager_id TEXT REFERENCES users (id),
    opened_at       BIGINT NOT NULL,
    due_at          BIGINT,
    due_what        TEXT,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX cases_due ON cases (due_at) WHERE stage <> 'closed';

-- Identifying details, kept apart: shown only to the case's own roles.
CREATE TABLE case_people (
    case_id    TEXT PRIMARY KEY REFERENCES cases (id),
    full_name  TEXT,
    birth_date TEXT,
    address    TEXT,
    phone      TEXT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE case_contacts (
    case_id    TEXT NOT NULL REFERENCES cases (id),
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    linked_at  BIGINT NOT NULL,
    linked_by  TEXT NOT NULL,
    PRIMARY KEY (case_id, contact_id)
);
CREATE INDEX case_contacts_contact ON case_contacts (contact_id);

-- Assessments, notes, referrals and stage changes, in order.
CREATE TABLE case_entries (
    id        TEXT PRIMARY KEY,
    case_id   TEXT NOT NULL REFERENCES cases (id),
    kind      TEXT NOT NULL CHECK (kind IN ('assessment', 'note', 'referral', 'stage')),
    body      TEXT NOT NULL,                    -- JSON
    author_id TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX case_entries_case ON case_entries (case_id, at);

CREATE TABLE placements (
    id            TEXT PRIMARY KEY,
    service_id    TEXT NOT NULL REFERENCES services (id),
    helpline      TEXT NOT NULL,
    contact_id    TEXT REFERENCES contacts (id),
    escalation_id TEXT REFERENCES escalations (id),
    case_id       TEXT REFERENCES cases (id),
    status        TEXT NOT NULL CHECK (status IN ('requested', 'admitted', 'left', 'cancelled')),
    requested_by  TEXT NOT NULL REFERENCES users (id),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX placements_service ON placements (service_id, status);
