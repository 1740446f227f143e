-- Upload sessions of a `BackendUploadStore`: offset, both hash states and the
-- backend's staged write, advanced by one statement per acknowledged append so
-- that any process continues a session. In a database file of their own
-- (beside the metadata database), so that their writes never queue behind
-- metadata transactions on the metadata database's one write connection.
CREATE TABLE upload_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    repository TEXT NOT NULL,
    owner TEXT,
    started INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    sha512 BLOB NOT NULL,
    staged BLOB NOT NULL
);
CREATE INDEX upload_sessions_by_owner ON upload_sessions (owner) WHERE owner IS NOT NULL;
