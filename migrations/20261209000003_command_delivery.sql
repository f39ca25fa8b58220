-- Which exchange socket a pending command was handed to: the node (`local` on a single node) and
-- its socket id, and when. While that socket is open no other socket of the exchange, on any node,
-- is handed the command; the claim is released when the socket closes (by its node), when its node
-- is no longer alive (by the other nodes), or when the node starts again.
ALTER TABLE telephony_commands ADD COLUMN handed_node TEXT;
ALTER TABLE telephony_commands ADD COLUMN handed_conn BIGINT;
ALTER TABLE telephony_commands ADD COLUMN handed_at BIGINT;
