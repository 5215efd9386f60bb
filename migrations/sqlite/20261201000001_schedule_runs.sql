-- When each scheduled route (`on: {schedule: ...}`) last ran. The scheduler claims a tick by
-- moving `last_tick` with a compare-and-set in the run's own transaction, so a restart does not
-- run every schedule again at once and two daemons on one database never run the same tick.

CREATE TABLE schedule_runs (
    route     TEXT PRIMARY KEY,
    -- The tick of the last run (RFC 3339): a cron time, or the start of an interval run or of a
    -- manual trigger. The next tick is computed from it.
    last_tick TEXT NOT NULL,
    -- When that run happened (RFC 3339).
    ran_at    TEXT NOT NULL
);
