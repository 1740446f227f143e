-- The server secret managed pull-secret tokens derive from (AuthStore::server_secret):
-- in the database, so that every replica on it derives the same tokens without a key file.
CREATE TABLE server_secret (
    id    INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    value BLOB NOT NULL
);
