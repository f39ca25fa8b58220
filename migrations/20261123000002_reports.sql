-- Indexes for figures, reports and staffing (src/metrics.rs). Portable SQL: SQLite and PostgreSQL.

-- Every figure and report reads contacts by the time they entered the queue:
--   WHERE queued_at >= $1 AND queued_at < $2 AND (...)
CREATE INDEX contacts_queued_at ON contacts (queued_at);

-- Occupancy reads status changes inside a window, and each counsellor's last change before it.
CREATE INDEX status_changes_at ON status_changes (at);
CREATE INDEX status_changes_user_at ON status_changes (user_id, at);
