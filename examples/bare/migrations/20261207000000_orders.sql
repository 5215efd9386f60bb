-- The example routes' table. One migrations folder serves SQLite and PostgreSQL alike, so
-- write SQL both accept (or keep a folder per database and point `migrations:` at the one in
-- use). Each file runs once, in version order; never edit one that has run, add a later one.
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    amount NUMERIC(12, 2) NOT NULL,
    placed_at TEXT NOT NULL,
    paid_at TEXT
);

CREATE TABLE invoices (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    amount NUMERIC(12, 2) NOT NULL,
    due_at TEXT NOT NULL
);
