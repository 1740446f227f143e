-- Registry metadata and auth records in PostgreSQL: the schema the SQLite
-- migrations (migrations/sqlite) arrive at, created directly. Timestamps are
-- unix nanoseconds (BIGINT); digests, names, tags and subjects are their
-- canonical text with the "C" collation, so comparisons and ORDER BY are
-- byte-wise whatever the database's locale: the lexical order the listings
-- promise.
--
-- Writers run SERIALIZABLE transactions (retried on serialization failures),
-- which gives them what SQLite's single writer gives the other backend: the
-- checks a write makes (immutable tags, quotas, blob states, child
-- manifests, retention's conditions) still hold when it commits.

-- Namespaces own repositories and scope role bindings. A repository does not
-- require its namespace row: pushes may create repositories in namespaces
-- that the admin API has not registered.
CREATE TABLE namespaces (
    name    TEXT COLLATE "C" PRIMARY KEY,
    created BIGINT NOT NULL
);

-- A namespace's lifecycle policy (registry_storage::NamespacePolicy) as JSON.
CREATE TABLE namespace_policies (
    namespace TEXT COLLATE "C" PRIMARY KEY REFERENCES namespaces (name) ON DELETE CASCADE,
    policy    TEXT NOT NULL
);

CREATE TABLE repositories (
    name      TEXT COLLATE "C" PRIMARY KEY,
    namespace TEXT COLLATE "C" NOT NULL,
    created   BIGINT NOT NULL
);

-- list_repositories within a namespace; delete_namespace.
CREATE INDEX repositories_by_namespace ON repositories (namespace, name);

CREATE TABLE manifests (
    repository    TEXT COLLATE "C" NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
    digest        TEXT COLLATE "C" NOT NULL,
    media_type    TEXT NOT NULL,
    bytes         BYTEA NOT NULL,
    size          BIGINT NOT NULL,
    subject       TEXT COLLATE "C",
    artifact_type TEXT,
    annotations   TEXT NOT NULL DEFAULT '{}',
    config        TEXT COLLATE "C",
    created       BIGINT NOT NULL,
    -- When a push last named it (a push of the same digest again moves it,
    -- never `created`): retention deletes a manifest only if no push named
    -- it after the run planned the delete.
    pushed        BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);

-- referrers(repository, subject).
CREATE INDEX manifests_by_subject ON manifests (repository, subject, digest)
    WHERE subject IS NOT NULL;
-- find_manifest(digest).
CREATE INDEX manifests_by_digest ON manifests (digest, repository);

-- Blobs (config and layers) each manifest references: the GC mark set.
CREATE TABLE manifest_blobs (
    repository TEXT COLLATE "C" NOT NULL,
    manifest   TEXT COLLATE "C" NOT NULL,
    blob       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (repository, manifest, blob),
    FOREIGN KEY (repository, manifest)
        REFERENCES manifests (repository, digest) ON DELETE CASCADE
);

-- referenced_blobs, blob_reference_count, begin_blob_delete.
CREATE INDEX manifest_blobs_by_blob ON manifest_blobs (blob);

-- Child manifests of an index.
CREATE TABLE manifest_children (
    repository TEXT COLLATE "C" NOT NULL,
    manifest   TEXT COLLATE "C" NOT NULL,
    child      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (repository, manifest, child),
    FOREIGN KEY (repository, manifest)
        REFERENCES manifests (repository, digest) ON DELETE CASCADE
);

CREATE INDEX manifest_children_by_child ON manifest_children (repository, child);

-- What a repository may serve (layer authorization).
CREATE TABLE blob_links (
    repository TEXT COLLATE "C" NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
    digest     TEXT COLLATE "C" NOT NULL,
    created    BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);

-- forget_blob.
CREATE INDEX blob_links_by_digest ON blob_links (digest);

CREATE TABLE tags (
    repository TEXT COLLATE "C" NOT NULL,
    tag        TEXT COLLATE "C" NOT NULL,
    digest     TEXT COLLATE "C" NOT NULL,
    updated    BIGINT NOT NULL,
    PRIMARY KEY (repository, tag),
    FOREIGN KEY (repository, digest)
        REFERENCES manifests (repository, digest) ON DELETE CASCADE
);

-- delete_manifest: the tags pointing at a manifest.
CREATE INDEX tags_by_digest ON tags (repository, digest);

-- Every tag move, never updated; digest NULL records a deletion. The id
-- orders events of equal timestamps (two moves of one tag conflict, so the
-- later commit draws the larger id).
CREATE TABLE tag_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository TEXT COLLATE "C" NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
    tag        TEXT COLLATE "C" NOT NULL,
    digest     TEXT COLLATE "C",
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL
);

CREATE INDEX tag_events_by_tag ON tag_events (repository, tag, id);

-- Garbage collection's record of each blob (see registry-storage's gc.rs).
-- `state`: 0 live, 1 deleting, 2 deleted. A blob without a row counts as
-- live, generation 0, epoch 0.
CREATE TABLE blob_records (
    digest     TEXT COLLATE "C" PRIMARY KEY,
    state      BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    epoch      BIGINT NOT NULL,
    touched    BIGINT NOT NULL
);

-- stale_blob_deletes.
CREATE INDEX blob_records_deleting ON blob_records (touched) WHERE state = 1;

-- Namespace usage (registry_storage::usage): bytes and count of the distinct
-- blobs linked to any repository of a namespace, kept exact by the triggers
-- below in the transaction of every change of `blob_links` (inserts, deletes
-- and the deletes its foreign key cascades from `repositories`).

-- Verified blob sizes. A digest's size never changes: the first one stays.
CREATE TABLE blob_sizes (
    digest TEXT COLLATE "C" PRIMARY KEY,
    size   BIGINT NOT NULL
);

-- The distinct blobs of each namespace: `links` counts its repositories that
-- link the blob; `size` is what the namespace's counters hold for it.
CREATE TABLE namespace_blobs (
    namespace TEXT COLLATE "C" NOT NULL,
    digest    TEXT COLLATE "C" NOT NULL,
    size      BIGINT NOT NULL,
    links     BIGINT NOT NULL,
    PRIMARY KEY (namespace, digest)
);

CREATE INDEX namespace_blobs_by_digest ON namespace_blobs (digest);

-- The counters: one row per namespace holding at least one blob.
CREATE TABLE namespace_usage (
    namespace TEXT COLLATE "C" PRIMARY KEY,
    bytes     BIGINT NOT NULL,
    blobs     BIGINT NOT NULL
);

CREATE INDEX namespace_usage_by_bytes ON namespace_usage (bytes DESC, namespace);

-- A repository's namespace: the text before its first `/`.
CREATE FUNCTION registry_namespace_of(repository TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT split_part(repository, '/', 1) $$;

CREATE FUNCTION blob_links_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO namespace_blobs AS b (namespace, digest, size, links)
    VALUES (registry_namespace_of(NEW.repository), NEW.digest,
            COALESCE((SELECT size FROM blob_sizes WHERE digest = NEW.digest), 0), 1)
    ON CONFLICT (namespace, digest) DO UPDATE SET links = b.links + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER blob_links_counted AFTER INSERT ON blob_links
    FOR EACH ROW EXECUTE FUNCTION blob_links_counted();

CREATE FUNCTION blob_links_uncounted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE namespace_blobs SET links = links - 1
    WHERE namespace = registry_namespace_of(OLD.repository) AND digest = OLD.digest;
    DELETE FROM namespace_blobs
    WHERE namespace = registry_namespace_of(OLD.repository) AND digest = OLD.digest
      AND links <= 0;
    RETURN NULL;
END $$;

CREATE TRIGGER blob_links_uncounted AFTER DELETE ON blob_links
    FOR EACH ROW EXECUTE FUNCTION blob_links_uncounted();

CREATE FUNCTION namespace_blobs_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO namespace_usage AS u (namespace, bytes, blobs) VALUES (NEW.namespace, NEW.size, 1)
    ON CONFLICT (namespace) DO UPDATE SET bytes = u.bytes + EXCLUDED.bytes, blobs = u.blobs + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER namespace_blobs_added AFTER INSERT ON namespace_blobs
    FOR EACH ROW EXECUTE FUNCTION namespace_blobs_added();

CREATE FUNCTION namespace_blobs_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE namespace_usage SET bytes = bytes - OLD.size, blobs = blobs - 1
    WHERE namespace = OLD.namespace;
    DELETE FROM namespace_usage WHERE namespace = OLD.namespace AND blobs <= 0;
    RETURN NULL;
END $$;

CREATE TRIGGER namespace_blobs_removed AFTER DELETE ON namespace_blobs
    FOR EACH ROW EXECUTE FUNCTION namespace_blobs_removed();

CREATE FUNCTION namespace_blobs_resized() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE namespace_usage SET bytes = bytes - OLD.size + NEW.size
    WHERE namespace = NEW.namespace;
    RETURN NULL;
END $$;

CREATE TRIGGER namespace_blobs_resized AFTER UPDATE OF size ON namespace_blobs
    FOR EACH ROW EXECUTE FUNCTION namespace_blobs_resized();

CREATE FUNCTION blob_sizes_learned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE namespace_blobs SET size = NEW.size WHERE digest = NEW.digest AND size <> NEW.size;
    RETURN NULL;
END $$;

CREATE TRIGGER blob_sizes_learned AFTER INSERT ON blob_sizes
    FOR EACH ROW EXECUTE FUNCTION blob_sizes_learned();
