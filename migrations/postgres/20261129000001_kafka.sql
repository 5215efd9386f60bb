-- Every event id this database has applied, on either bus. The Kafka relay publishes at least
-- once, so the same event can reach Kafka twice, and an event may have gone through the other
-- bus before a switch between the embedded bus and Kafka; claiming its id in the transaction
-- that applies it makes any second copy a no-op.
CREATE TABLE consumed_events (
    event_id    TEXT NOT NULL PRIMARY KEY,
    consumer    TEXT NOT NULL,
    consumed_at TEXT NOT NULL
);
