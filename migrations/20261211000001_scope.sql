-- Trust (issue 20): who sees what, and which database a cluster shares.
-- A supervisor sees the helplines listed on their account; "all helplines" is an explicit grant
-- (`helpline user grant-all-helplines`, audited), never the default of an empty list.
ALTER TABLE users ADD COLUMN all_helplines BOOLEAN NOT NULL DEFAULT FALSE;

-- One row: this database's cluster id, written once (by the first node that starts on it). Nodes
-- that share a Redis key prefix but not this id refuse to follow each other's leader.
CREATE TABLE cluster_identity (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    cluster_id TEXT NOT NULL
);
