-- Who did what to which record, written in the transaction of the change it records, and
-- never changed afterwards: logins and logouts, and the changes people make to users,
-- customers, tasks, meetings and approval requests through the API.
CREATE TABLE audit_log (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT,
    changes       TEXT,
    ip_address    TEXT,
    recorded_at   TEXT NOT NULL
);

CREATE INDEX audit_log_recent ON audit_log (recorded_at, id);
CREATE INDEX audit_log_user ON audit_log (user_id, recorded_at);
CREATE INDEX audit_log_resource ON audit_log (resource_type, resource_id);
