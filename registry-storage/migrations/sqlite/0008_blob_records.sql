-- Garbage collection's record of each blob (see registry-storage's gc.rs):
-- every link and every manifest commit moves `generation` and `touched` in
-- its own transaction; a collector marks a blob `state = 1` (deleting) only
-- if `generation` is the one it read and no manifest references the blob,
-- and `epoch` moves with that mark so that tickets taken before it fail.
-- `state`: 0 live, 1 deleting, 2 deleted. `touched`: unix nanoseconds.
-- A blob without a row has never been linked since this table exists: it
-- counts as live, generation 0, epoch 0.
CREATE TABLE blob_records (
    digest     TEXT PRIMARY KEY NOT NULL,
    state      INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    epoch      INTEGER NOT NULL,
    touched    INTEGER NOT NULL
) WITHOUT ROWID;
