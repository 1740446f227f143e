-- Namespace usage (registry_storage::usage): bytes and count of the distinct
-- blobs linked to any repository of a namespace, kept exact by triggers in
-- the transaction of every change of `blob_links` (inserts, deletes and the
-- deletes its foreign key cascades from `repositories`).

-- Verified blob sizes (an upload's commit, a stat). A digest's size never
-- changes: the first one recorded stays.
CREATE TABLE blob_sizes (
    digest TEXT PRIMARY KEY NOT NULL,
    size   INTEGER NOT NULL
) WITHOUT ROWID;

-- The distinct blobs of each namespace: `links` counts its repositories that
-- link the blob; `size` is what the namespace's counters hold for it (0
-- while the size is unknown).
CREATE TABLE namespace_blobs (
    namespace TEXT NOT NULL,
    digest    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    links     INTEGER NOT NULL,
    PRIMARY KEY (namespace, digest)
) WITHOUT ROWID;

-- A size learned late reaches every namespace holding the blob.
CREATE INDEX namespace_blobs_by_digest ON namespace_blobs (digest);

-- The counters: one row per namespace holding at least one blob.
CREATE TABLE namespace_usage (
    namespace TEXT PRIMARY KEY NOT NULL,
    bytes     INTEGER NOT NULL,
    blobs     INTEGER NOT NULL
) WITHOUT ROWID;

-- Largest namespaces first (metrics).
CREATE INDEX namespace_usage_by_bytes ON namespace_usage (bytes DESC, namespace);

CREATE TRIGGER blob_links_counted AFTER INSERT ON blob_links
BEGIN
    INSERT INTO namespace_blobs (namespace, digest, size, links)
    VALUES (substr(NEW.repository, 1, instr(NEW.repository, '/') - 1), NEW.digest,
            COALESCE((SELECT size FROM blob_sizes WHERE digest = NEW.digest), 0), 1)
    ON CONFLICT (namespace, digest) DO UPDATE SET links = links + 1;
END;

CREATE TRIGGER blob_links_uncounted AFTER DELETE ON blob_links
BEGIN
    UPDATE namespace_blobs SET links = links - 1
    WHERE namespace = substr(OLD.repository, 1, instr(OLD.repository, '/') - 1)
      AND digest = OLD.digest;
    DELETE FROM namespace_blobs
    WHERE namespace = substr(OLD.repository, 1, instr(OLD.repository, '/') - 1)
      AND digest = OLD.digest AND links <= 0;
END;

CREATE TRIGGER namespace_blobs_added AFTER INSERT ON namespace_blobs
BEGIN
    INSERT INTO namespace_usage (namespace, bytes, blobs) VALUES (NEW.namespace, NEW.size, 1)
    ON CONFLICT (namespace) DO UPDATE SET bytes = bytes + excluded.bytes, blobs = blobs + 1;
END;

CREATE TRIGGER namespace_blobs_removed AFTER DELETE ON namespace_blobs
BEGIN
    UPDATE namespace_usage SET bytes = bytes - OLD.size, blobs = blobs - 1
    WHERE namespace = OLD.namespace;
    DELETE FROM namespace_usage WHERE namespace = OLD.namespace AND blobs <= 0;
END;

CREATE TRIGGER namespace_blobs_resized AFTER UPDATE OF size ON namespace_blobs
BEGIN
    UPDATE namespace_usage SET bytes = bytes - OLD.size + NEW.size
    WHERE namespace = NEW.namespace;
END;

CREATE TRIGGER blob_sizes_learned AFTER INSERT ON blob_sizes
BEGIN
    UPDATE namespace_blobs SET size = NEW.size WHERE digest = NEW.digest AND size <> NEW.size;
END;

-- Existing data: sizes the stored manifests declare for their config and
-- layers (the API verified each against the blob when the manifest was
-- pushed), then the counters from the links. Blobs no manifest references
-- count 0 until `registryctl namespace usage --recompute` stats them.
INSERT INTO blob_sizes (digest, size)
SELECT digest, MAX(size) FROM (
    SELECT json_extract(l.value, '$.digest') AS digest, json_extract(l.value, '$.size') AS size
    FROM manifests m,
         json_each(CASE WHEN json_valid(CAST(m.bytes AS TEXT)) THEN CAST(m.bytes AS TEXT)
                        ELSE '{}' END, '$.layers') l
    UNION ALL
    SELECT json_extract(CAST(m.bytes AS TEXT), '$.config.digest'),
           json_extract(CAST(m.bytes AS TEXT), '$.config.size')
    FROM manifests m WHERE json_valid(CAST(m.bytes AS TEXT))
)
WHERE typeof(digest) = 'text' AND typeof(size) = 'integer' AND size >= 0
GROUP BY digest;

INSERT INTO namespace_blobs (namespace, digest, size, links)
SELECT substr(l.repository, 1, instr(l.repository, '/') - 1), l.digest,
       COALESCE(s.size, 0), COUNT(*)
FROM blob_links l LEFT JOIN blob_sizes s ON s.digest = l.digest
GROUP BY substr(l.repository, 1, instr(l.repository, '/') - 1), l.digest;
