-- A namespace's lifecycle policy (registry_storage::NamespacePolicy) as JSON: retention,
-- immutable tag patterns, quota. Absent: the default policy. Goes with its namespace.
CREATE TABLE namespace_policies (
    namespace TEXT PRIMARY KEY NOT NULL REFERENCES namespaces (name) ON DELETE CASCADE,
    policy    TEXT NOT NULL
) WITHOUT ROWID;
