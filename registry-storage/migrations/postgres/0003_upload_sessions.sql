-- Upload sessions of blob backends that keep no state of their own (S3):
-- offset, both hash states and the backend's staged write, advanced by one
-- statement per acknowledged append so that any replica continues a session
-- (see migrations/sqlite/0015_upload_sessions.sql).
CREATE TABLE upload_sessions (
    id         TEXT COLLATE "C" PRIMARY KEY,
    repository TEXT COLLATE "C" NOT NULL,
    owner      TEXT COLLATE "C",
    started    BIGINT NOT NULL,
    updated    BIGINT NOT NULL,
    "offset"   BIGINT NOT NULL,
    sha256     BYTEA NOT NULL,
    sha512     BYTEA NOT NULL,
    staged     BYTEA NOT NULL
);

CREATE INDEX upload_sessions_by_owner ON upload_sessions (owner) WHERE owner IS NOT NULL;

-- The server secret managed pull-secret tokens derive from
-- (AuthStore::server_secret): every replica on the database derives the same
-- tokens without a key file.
CREATE TABLE server_secret (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    value BYTEA NOT NULL
);
