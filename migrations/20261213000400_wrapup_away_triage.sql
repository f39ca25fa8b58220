-- Wrap-up, away reasons, triage and offline callers (issue 22, items 3-5), configured per helpline.
ALTER TABLE helplines ADD COLUMN wrapup_limit_ms BIGINT NOT NULL DEFAULT 60000;
ALTER TABLE helplines ADD COLUMN away_reasons TEXT NOT NULL DEFAULT 'break,training,supervision,admin';
-- NULL: the helpline does not ask the triage question; else the priority a yes gives.
ALTER TABLE helplines ADD COLUMN triage_priority BIGINT;
ALTER TABLE helplines ADD COLUMN ring_offline_callers BOOLEAN NOT NULL DEFAULT FALSE;
-- When the counsellor's wrap-up of the contact ended (ready, form, or the limit): handle time runs to it.
ALTER TABLE contacts ADD COLUMN wrapup_ended_at BIGINT;
-- Why a counsellor went away (one of the helplines' away reasons), beside who set it (`reason`).
ALTER TABLE status_changes ADD COLUMN away_reason TEXT;
