-- Hours, waiting and wrap-up (issue 22): what the router restores after a restart.
-- Until when a counsellor's slot is in wrap-up after this contact (set when the wrap-up starts; the
-- wrap-up is over once `wrapup_ended_at` is set): a restarted router keeps the slot in wrap-up.
ALTER TABLE contacts ADD COLUMN wrapup_until BIGINT;
CREATE INDEX contacts_wrapup_open ON contacts (wrapup_until) WHERE wrapup_until IS NOT NULL AND wrapup_ended_at IS NULL;
-- The recent answers a restarted router seeds its estimated waits from.
CREATE INDEX contacts_answered_at ON contacts (answered_at) WHERE answered_at IS NOT NULL;
