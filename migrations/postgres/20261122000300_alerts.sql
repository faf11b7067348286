-- The durable alert outbox: one row per (event, webhook), written in the same
-- transaction as the event. The row id makes the alert's stable webhook id.
-- Same conventions as 20261122000100_engine.sql.
CREATE TABLE alert_outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id BIGINT NOT NULL REFERENCES events (id),
    webhook TEXT NOT NULL,
    generation BIGINT NOT NULL,
    -- pending | delivered | failed
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);

CREATE INDEX alert_outbox_due ON alert_outbox (status, next_attempt_at);
