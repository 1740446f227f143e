-- Registry metadata. Timestamps are unix nanoseconds (INTEGER); digests,
-- names and tags are their canonical text, so BINARY collation gives the
-- lexical order the listings promise.

-- Namespaces own repositories and scope role bindings. A repository does not
-- require its namespace row: pushes may create repositories in namespaces
-- that the admin API has not registered.
CREATE TABLE namespaces (
    name    TEXT PRIMARY KEY NOT NULL,
    created INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE repositories (
    name      TEXT PRIMARY KEY NOT NULL,
    namespace TEXT NOT NULL,
    created   INTEGER NOT NULL
) WITHOUT ROWID;

-- list_repositories within a namespace; delete_namespace.
CREATE INDEX repositories_by_namespace ON repositories (namespace, name);

-- Rowid table on purpose: rows carry the manifest bytes, which are too large
-- for a WITHOUT ROWID b-tree to stay efficient.
CREATE TABLE manifests (
    repository    TEXT NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
    digest        TEXT NOT NULL,
    media_type    TEXT NOT NULL,
    bytes         BLOB NOT NULL,
    size          INTEGER NOT NULL,
    subject       TEXT,
    artifact_type TEXT,
    annotations   TEXT NOT NULL DEFAULT '{}',
    config        TEXT,
    created       INTEGER NOT NULL,
    PRIMARY KEY (repository, digest)
);

-- referrers(repository, subject).
CREATE INDEX manifests_by_subject ON manifests (repository, subject, digest)
    WHERE subject IS NOT NULL;
-- find_manifest(digest).
CREATE INDEX manifests_by_digest ON manifests (digest, repository);

-- Blobs (config and layers) each manifest references: the GC mark set.
CREATE TABLE manifest_blobs (
    repository TEXT NOT NULL,
    manifest   TEXT NOT NULL,
    blob       TEXT NOT NULL,
    PRIMARY KEY (repository, manifest, blob),
    FOREIGN KEY (repository, manifest)
        REFERENCES manifests (repository, digest) ON DELETE CASCADE
) WITHOUT ROWID;

-- referenced_blobs.
CREATE INDEX manifest_blobs_by_blob ON manifest_blobs (blob);

-- Child manifests of an index.
CREATE TABLE manifest_children (
    repository TEXT NOT NULL,
    manifest   TEXT NOT NULL,
    child      TEXT NOT NULL,
    PRIMARY KEY (repository, manifest, child),
    FOREIGN KEY (repository, manifest)
        REFERENCES manifests (repository, digest) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE INDEX manifest_children_by_child ON manifest_children (repository, child);

-- What a repository may serve (layer authorization).
CREATE TABLE blob_links (
    repository TEXT NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
    digest     TEXT NOT NULL,
    created    INTEGER NOT NULL,
    PRIMARY KEY (repository, digest)
) WITHOUT ROWID;

-- forget_blob.
CREATE INDEX blob_links_by_digest ON blob_links (digest);

CREATE TABLE tags (
    repository TEXT NOT NULL,
    tag        TEXT NOT NULL,
    digest     TEXT NOT NULL,
    updated    INTEGER NOT NULL,
    PRIMARY KEY (repository, tag),
    FOREIGN KEY (repository, digest)
        REFERENCES manifests (repository, digest) ON DELETE CASCADE
) WITHOUT ROWID;

-- delete_manifest: the tags pointing at a manifest.
CREATE INDEX tags_by_digest ON tags (repository, digest);

-- Every tag move, never updated; digest NULL records a deletion. The id
-- orders events of equal timestamps.
CREATE TABLE tag_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    repository TEXT NOT NULL REFERENCES repositories (name) ON DELETE CASCADE,
    tag        TEXT NOT NULL,
    digest     TEXT,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL
);

CREATE INDEX tag_events_by_tag ON tag_events (repository, tag, id);
