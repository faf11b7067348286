-- The durable alert outbox: one row per (event, webhook), written in the same
-- transaction as the event. The row id makes the alert's stable webhook id.
-- Same conventions as 20261122000100_engine.sql.
CREATE TABLE alert_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id INTEGER NOT NULL REFERENCES events (id),
    webhook TEXT NOT NULL,
    generation INTEGER NOT NULL,
    -- pending | delivered | failed
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
) STRICT;

CREATE INDEX alert_outbox_due ON alert_outbox (status, next_attempt_at);
