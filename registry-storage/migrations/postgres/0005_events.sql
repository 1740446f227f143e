-- The outbox: events written by the transaction of the change that raised
-- them, the audit trail read from the same rows, webhooks and one delivery
-- row per (event, webhook) created in that same transaction. Times are unix
-- nanoseconds, as everywhere in this schema.
CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    namespace TEXT,
    subject TEXT,
    actor TEXT NOT NULL,
    time BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_namespace ON events (namespace, seq);

-- namespace NULL: a cluster-wide sink from the servers' configuration.
-- events: ',type,type,' or '' for every type.
CREATE TABLE webhooks (
    id BIGSERIAL PRIMARY KEY,
    namespace TEXT,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret TEXT NOT NULL,
    include_pulls BOOLEAN NOT NULL,
    created BIGINT NOT NULL,
    retry_at BIGINT,
    lease_owner TEXT,
    lease_until BIGINT
);
CREATE INDEX webhooks_namespace ON webhooks (namespace);

CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    webhook BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event BIGINT NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_code INTEGER,
    last_error TEXT,
    next_attempt BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook, id)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event);
