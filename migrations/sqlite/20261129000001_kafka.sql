-- Kafka mode: the event ids each consumer group has handled. The relay publishes the outbox at
-- least once, so the same event can reach Kafka twice; claiming its id in the transaction that
-- applies it makes the second copy a no-op.
CREATE TABLE consumed_events (
    consumer    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    consumed_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
