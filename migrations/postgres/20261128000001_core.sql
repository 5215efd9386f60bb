-- PostgreSQL twin of migrations/sqlite: same tables and columns; integers are BIGINT so the
-- sqlx Any driver binds i64 everywhere.
-- Core tables of the router: the event log (embedded bus and outbox), consumer positions,
-- dead letters and daemon settings. Timestamps are RFC 3339 text on every database so the
-- same route templates (`now()`) work unchanged on SQLite and PostgreSQL.

CREATE TABLE event_log (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     TEXT    NOT NULL UNIQUE,
    topic        TEXT    NOT NULL,
    event_key    TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    envelope     TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    -- Set by the Kafka relay once the broker acknowledged the event; unused by the embedded bus.
    published_at TEXT
);

CREATE INDEX event_log_unpublished ON event_log (seq) WHERE published_at IS NULL;

CREATE TABLE consumer_positions (
    consumer   TEXT    NOT NULL,
    topic      TEXT    NOT NULL,
    partition  BIGINT NOT NULL,
    position   BIGINT NOT NULL,
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

CREATE TABLE dead_letters (
    id               TEXT    PRIMARY KEY,
    event_id         TEXT    NOT NULL,
    topic            TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    event_key        TEXT    NOT NULL,
    envelope         TEXT    NOT NULL,
    route            TEXT,
    action_index     TEXT,
    action_kind      TEXT,
    error            TEXT    NOT NULL,
    attempts         BIGINT NOT NULL,
    first_failed_at  TEXT    NOT NULL,
    last_failed_at   TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'PENDING'
);

CREATE INDEX dead_letters_route ON dead_letters (route, status);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
