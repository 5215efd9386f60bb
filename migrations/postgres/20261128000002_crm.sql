-- PostgreSQL twin of migrations/sqlite: same tables and columns; integers are BIGINT so the
-- sqlx Any driver binds i64 everywhere.
-- Tables of the bundled CRM. Ids are UUID text; timestamps RFC 3339 text (UTC).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'USER',
    manager_id    TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE customers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    email      TEXT UNIQUE,
    phone      TEXT,
    industry   TEXT,
    size       TEXT,
    address    TEXT,
    owner_id   TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT
);

CREATE INDEX customers_owner ON customers (owner_id, created_at);

CREATE TABLE tasks (
    id                    TEXT PRIMARY KEY,
    title                 TEXT NOT NULL,
    description           TEXT,
    customer_id           TEXT,
    assignee_id           TEXT,
    due_date              TEXT,
    status                TEXT NOT NULL DEFAULT 'TODO',
    priority              TEXT NOT NULL DEFAULT 'MEDIUM',
    completed_at          TEXT,
    due_soon_notified_at  TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL,
    deleted_at            TEXT
);

CREATE INDEX tasks_customer ON tasks (customer_id);
CREATE INDEX tasks_assignee ON tasks (assignee_id, created_at);
CREATE INDEX tasks_due ON tasks (due_date) WHERE due_soon_notified_at IS NULL;

CREATE TABLE opportunities (
    id               TEXT PRIMARY KEY,
    customer_id      TEXT,
    name             TEXT NOT NULL,
    amount           DOUBLE PRECISION NOT NULL DEFAULT 0,
    stage            TEXT NOT NULL DEFAULT 'PROSPECTING',
    owner_id         TEXT,
    activity_count   BIGINT NOT NULL DEFAULT 0,
    last_activity_at TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);

CREATE INDEX opportunities_customer ON opportunities (customer_id);

CREATE TABLE approvals (
    id             TEXT PRIMARY KEY,
    opportunity_id TEXT,
    customer_id    TEXT,
    requester_id   TEXT NOT NULL,
    approver_id    TEXT,
    title          TEXT NOT NULL,
    amount         DOUBLE PRECISION,
    status         TEXT NOT NULL DEFAULT 'PENDING',
    comment        TEXT,
    requested_at   TEXT NOT NULL,
    decided_at     TEXT
);

CREATE TABLE notifications (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    title      TEXT NOT NULL,
    message    TEXT NOT NULL,
    link       TEXT,
    read       BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    read_at    TEXT
);

CREATE INDEX notifications_user ON notifications (user_id, created_at);

CREATE TABLE analytics_daily (
    day        TEXT    NOT NULL,
    topic      TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    count      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, topic, event_type)
);
