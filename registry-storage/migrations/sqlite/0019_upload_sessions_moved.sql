-- Upload sessions moved to a database file of their own (see
-- `migrations/sqlite-sessions`); `SqliteMetadataStore::open` copies the rows
-- of this table there before this migration runs.
DROP TABLE upload_sessions;
