-- The REST lists are ordered newest first and paged: without these, every page sorted the
-- whole table (measured by `crm-router bench --variant rest-read`).
CREATE INDEX customers_newest ON customers (created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX tasks_newest ON tasks (created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX opportunities_newest ON opportunities (created_at DESC, id DESC);
