-- Auth records of registry-auth's AuthStore, in the same database as the
-- metadata. Timestamps are unix nanoseconds (INTEGER). Subjects are their
-- canonical text: a user is its name, a service account
-- `system:serviceaccount:<namespace>:<name>`, a group `system:authenticated`
-- or `system:anonymous`. User names never contain `:`, so the forms cannot
-- collide.
--
-- No secret is ever stored: passwords only as argon2id PHC strings, access
-- tokens only as the SHA-256 of their text.
--
-- Tokens and bindings do not reference their subject with a foreign key:
-- bindings may be made ahead of the account, and a token of a missing owner
-- never authenticates. Deleting a user or a service account removes its
-- tokens and bindings through the triggers below, inside the deleting
-- statement.

CREATE TABLE users (
    name          TEXT PRIMARY KEY NOT NULL,
    -- NULL: password login disabled (token-only user).
    password_hash TEXT,
    created       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE service_accounts (
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    created   INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;

CREATE TABLE access_tokens (
    -- UUID, hyphenated lowercase: text order is the UUID's byte order.
    id        TEXT PRIMARY KEY NOT NULL,
    -- SHA-256 of the token text; the token itself is shown once, never kept.
    hash      BLOB NOT NULL UNIQUE CHECK (typeof(hash) = 'blob' AND length(hash) = 32),
    owner     TEXT NOT NULL,
    name      TEXT NOT NULL,
    created   INTEGER NOT NULL,
    expires   INTEGER,
    last_used INTEGER,
    -- A token's name is unique per owner; the index also serves the cascade.
    UNIQUE (owner, name)
) WITHOUT ROWID;

-- list_tokens(owner), sorted by (created, id).
CREATE INDEX access_tokens_by_owner ON access_tokens (owner, created, id);

-- A binding is a set element: the whole row is the key.
CREATE TABLE role_bindings (
    namespace TEXT NOT NULL,
    role      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    PRIMARY KEY (namespace, role, subject)
) WITHOUT ROWID;

-- The cascade of a subject's deletion.
CREATE INDEX role_bindings_by_subject ON role_bindings (subject);

CREATE TABLE cluster_role_bindings (
    role    TEXT NOT NULL,
    subject TEXT NOT NULL,
    PRIMARY KEY (role, subject)
) WITHOUT ROWID;

CREATE INDEX cluster_role_bindings_by_subject ON cluster_role_bindings (subject);

CREATE TRIGGER users_delete_cascade AFTER DELETE ON users
BEGIN
    DELETE FROM access_tokens WHERE owner = OLD.name;
    DELETE FROM role_bindings WHERE subject = OLD.name;
    DELETE FROM cluster_role_bindings WHERE subject = OLD.name;
END;

-- The subject text is built as registry_auth::ServiceAccountRef displays it.
CREATE TRIGGER service_accounts_delete_cascade AFTER DELETE ON service_accounts
BEGIN
    DELETE FROM access_tokens
        WHERE owner = 'system:serviceaccount:' || OLD.namespace || ':' || OLD.name;
    DELETE FROM role_bindings
        WHERE subject = 'system:serviceaccount:' || OLD.namespace || ':' || OLD.name;
    DELETE FROM cluster_role_bindings
        WHERE subject = 'system:serviceaccount:' || OLD.namespace || ':' || OLD.name;
END;
