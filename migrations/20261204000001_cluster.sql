-- Cluster mode: the fencing token of the current routing leader.
-- One row. A node that wins the leader lease in Redis raises `token` to its own (higher) token
-- before it routes anything, and every leader write transaction first reads this row FOR SHARE
-- and checks it still holds the token: a paused or partitioned old leader's writes are refused.
CREATE TABLE cluster_fence (
    id        BIGINT PRIMARY KEY CHECK (id = 1),
    token     BIGINT NOT NULL,
    holder    TEXT,
    raised_at BIGINT
);
INSERT INTO cluster_fence (id, token) VALUES (1, 0);
