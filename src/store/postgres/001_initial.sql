-- Schema version 1 of PostgresStore.
--
-- stagegate_meta holds one row: the last commit's revision and the log floor (the highest
-- revision whose change-feed entries were dropped). Every commit locks that row first
-- (SELECT ... FOR UPDATE) and sets the next revision inside its own transaction, so commits are
-- serialized: revisions are consecutive and assigned in commit order, and a reader that sees
-- revision N has already been able to see every revision below it.
CREATE TABLE stagegate_meta (
    id smallint PRIMARY KEY CHECK (id = 1),
    revision bigint NOT NULL CHECK (revision >= 0),
    log_floor bigint NOT NULL CHECK (log_floor >= 0 AND log_floor <= revision)
);
INSERT INTO stagegate_meta (id, revision, log_floor) VALUES (1, 0, 0);

-- One row per record: the key (`kind/id`), its version, and the record as JSON.
CREATE TABLE stagegate_records (
    key text PRIMARY KEY,
    version bigint NOT NULL CHECK (version >= 1),
    value text NOT NULL
);

-- The change feed: one row per write, (revision, seq) in commit and write order, the change
-- as JSON.
CREATE TABLE stagegate_log (
    revision bigint NOT NULL,
    seq integer NOT NULL,
    change text NOT NULL,
    PRIMARY KEY (revision, seq)
);
