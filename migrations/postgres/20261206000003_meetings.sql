-- Meetings: a salesperson's meeting with a customer, as the original CRM recorded them, when
-- their reminder went out (once per meeting) and, deletion being soft, when they were deleted.
CREATE TABLE meetings (
    id               TEXT PRIMARY KEY,
    customer_id      TEXT NOT NULL,
    sales_id         TEXT NOT NULL,
    date             TEXT NOT NULL,
    summary          TEXT NOT NULL,
    next_action      TEXT,
    next_action_date TEXT,
    reminded_at      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    deleted_at       TEXT
);

CREATE INDEX meetings_customer ON meetings (customer_id, date);
CREATE INDEX meetings_sales ON meetings (sales_id, date);
CREATE INDEX meetings_reminder ON meetings (date) WHERE reminded_at IS NULL AND deleted_at IS NULL;
