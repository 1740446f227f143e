-- Registry tokens (registry-auth's AuthStore): the token CA, the token-signing keys it
-- certifies, and refresh tokens. Timestamps are unix nanoseconds (INTEGER), subjects their
-- canonical text, as in 0002_auth.sql.
--
-- The CA's and the signing keys' private keys (PKCS#8 DER) are the only secrets this
-- database holds: every replica signs registry tokens with them, and whoever reads the
-- database can too. Refresh tokens are stored only as the SHA-256 of their text.

-- One row: the CA is made once per store and kept (the trust anchor other registries
-- are configured with).
CREATE TABLE token_ca (
    id          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    certificate BLOB NOT NULL,
    private_key BLOB NOT NULL,
    created     INTEGER NOT NULL
);

CREATE TABLE token_signing_keys (
    -- RFC 7638 thumbprint of the public key: the tokens' `kid`.
    kid         TEXT PRIMARY KEY NOT NULL,
    certificate BLOB NOT NULL,
    private_key BLOB NOT NULL,
    created     INTEGER NOT NULL,
    signs_from  INTEGER NOT NULL,
    expires     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE refresh_tokens (
    -- UUID, hyphenated lowercase (the id space of access tokens).
    id        TEXT PRIMARY KEY NOT NULL,
    hash      BLOB NOT NULL UNIQUE CHECK (typeof(hash) = 'blob' AND length(hash) = 32),
    owner     TEXT NOT NULL,
    provider  TEXT NOT NULL,
    -- The provider's groups at login, a JSON array of strings.
    groups    TEXT NOT NULL,
    client_id TEXT NOT NULL,
    created   INTEGER NOT NULL,
    expires   INTEGER,
    last_used INTEGER
) WITHOUT ROWID;

-- list_refresh_tokens(owner), sorted by (created, id); also serves the cascades.
CREATE INDEX refresh_tokens_by_owner ON refresh_tokens (owner, created, id);

CREATE TRIGGER users_delete_refresh_tokens AFTER DELETE ON users
BEGIN
    DELETE FROM refresh_tokens WHERE owner = OLD.name;
END;

CREATE TRIGGER service_accounts_delete_refresh_tokens AFTER DELETE ON service_accounts
BEGIN
    DELETE FROM refresh_tokens
        WHERE owner = 'system:serviceaccount:' || OLD.namespace || ':' || OLD.name;
END;
