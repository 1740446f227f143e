-- Auth records of registry-auth's AuthStore, in the same database as the
-- metadata (see migrations/sqlite/0002_auth.sql and 0012_tokens.sql for the
-- meaning of each table). Subjects are their canonical text: a user is its
-- name, a service account `system:serviceaccount:<namespace>:<name>`.
--
-- No secret is stored but the token CA's and signing keys' private keys
-- (every replica signs registry tokens with them): passwords only as
-- argon2id PHC strings, access and refresh tokens only as the SHA-256 of
-- their text.

CREATE TABLE users (
    name          TEXT COLLATE "C" PRIMARY KEY,
    -- NULL: password login disabled (token-only user).
    password_hash TEXT,
    created       BIGINT NOT NULL
);

CREATE TABLE service_accounts (
    namespace TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    created   BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE access_tokens (
    -- UUID, hyphenated lowercase: text order is the UUID's byte order.
    id        TEXT COLLATE "C" PRIMARY KEY,
    hash      BYTEA NOT NULL UNIQUE CHECK (length(hash) = 32),
    owner     TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    created   BIGINT NOT NULL,
    expires   BIGINT,
    last_used BIGINT,
    -- A token's name is unique per owner; the index also serves the cascade.
    CONSTRAINT access_tokens_owner_name UNIQUE (owner, name)
);

CREATE INDEX access_tokens_by_owner ON access_tokens (owner, created, id);

-- A binding is a set element: the whole row is the key.
CREATE TABLE role_bindings (
    namespace TEXT COLLATE "C" NOT NULL,
    role      TEXT COLLATE "C" NOT NULL,
    subject   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (namespace, role, subject)
);

CREATE INDEX role_bindings_by_subject ON role_bindings (subject);

CREATE TABLE cluster_role_bindings (
    role    TEXT COLLATE "C" NOT NULL,
    subject TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (role, subject)
);

CREATE INDEX cluster_role_bindings_by_subject ON cluster_role_bindings (subject);

-- One-time steps of the auth store (AuthStore::set_marker).
CREATE TABLE auth_markers (
    name    TEXT COLLATE "C" PRIMARY KEY,
    created BIGINT NOT NULL
);

-- One row: the token CA is made once per store and kept.
CREATE TABLE token_ca (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    certificate BYTEA NOT NULL,
    private_key BYTEA NOT NULL,
    created     BIGINT NOT NULL
);

CREATE TABLE token_signing_keys (
    -- RFC 7638 thumbprint of the public key: the tokens' `kid`.
    kid         TEXT COLLATE "C" PRIMARY KEY,
    certificate BYTEA NOT NULL,
    private_key BYTEA NOT NULL,
    created     BIGINT NOT NULL,
    signs_from  BIGINT NOT NULL,
    expires     BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
    id        TEXT COLLATE "C" PRIMARY KEY,
    hash      BYTEA NOT NULL UNIQUE CHECK (length(hash) = 32),
    owner     TEXT COLLATE "C" NOT NULL,
    provider  TEXT NOT NULL,
    -- The provider's groups at login, a JSON array of strings.
    groups    TEXT NOT NULL,
    client_id TEXT NOT NULL,
    created   BIGINT NOT NULL,
    expires   BIGINT,
    last_used BIGINT
);

CREATE INDEX refresh_tokens_by_owner ON refresh_tokens (owner, created, id);

-- Deleting a user or a service account removes its tokens and bindings
-- inside the deleting statement. The service account's subject text is
-- built as registry_auth::ServiceAccountRef displays it.
CREATE FUNCTION subject_deleted(subject TEXT) RETURNS void LANGUAGE sql AS $$
    DELETE FROM access_tokens WHERE owner = subject;
    DELETE FROM refresh_tokens WHERE owner = subject;
    DELETE FROM role_bindings WHERE role_bindings.subject = subject_deleted.subject;
    DELETE FROM cluster_role_bindings
        WHERE cluster_role_bindings.subject = subject_deleted.subject;
$$;

CREATE FUNCTION users_delete_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM subject_deleted(OLD.name);
    RETURN NULL;
END $$;

CREATE TRIGGER users_delete_cascade AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_delete_cascade();

CREATE FUNCTION service_accounts_delete_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM subject_deleted('system:serviceaccount:' || OLD.namespace || ':' || OLD.name);
    RETURN NULL;
END $$;

CREATE TRIGGER service_accounts_delete_cascade AFTER DELETE ON service_accounts
    FOR EACH ROW EXECUTE FUNCTION service_accounts_delete_cascade();
