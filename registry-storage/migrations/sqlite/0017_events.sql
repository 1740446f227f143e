-- The outbox: events written by the transaction of the change that raised
-- them, the audit trail read from the same rows, webhooks and one delivery
-- row per (event, webhook) created in that same transaction.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    namespace TEXT,
    subject TEXT,
    actor TEXT NOT NULL,
    time INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_namespace ON events (namespace, seq);

-- namespace NULL: a cluster-wide sink from the server's configuration.
-- events: ',type,type,' or '' for every type.
CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    include_pulls INTEGER NOT NULL,
    created INTEGER NOT NULL,
    retry_at INTEGER,
    lease_owner TEXT,
    lease_until INTEGER
);
CREATE INDEX webhooks_namespace ON webhooks (namespace);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_code INTEGER,
    last_error TEXT,
    next_attempt INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event);
