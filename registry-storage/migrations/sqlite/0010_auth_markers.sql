-- One-time steps of the auth store (AuthStore::set_marker), such as the bootstrap of the
-- `admin` user: recorded once, so that deleting what a step made does not make it run again.
CREATE TABLE auth_markers (
    name    TEXT PRIMARY KEY NOT NULL,
    created INTEGER NOT NULL
) WITHOUT ROWID;
