-- The route engine's state, the check history and the event history.
--
-- Conventions shared with migrations/sqlite (the queries in crates/store are the
-- same text for both backends):
-- * every time is BIGINT microseconds since the Unix epoch, UTC (TIMESTAMPTZ has the
--   same precision, but sqlx's Any driver, which runs one set of queries on both
--   backends, carries only integers, floats, text, blobs and booleans);
-- * every enum is its text spelling (`failed_over`, `backup`, ...), checked by the
--   loader rather than by CHECK constraints, so a new variant needs no migration;
-- * flags are BOOLEAN here and INTEGER 0/1 in SQLite.

-- One row (id = 1) once the engine has saved a step; its absence means a fresh store.
CREATE TABLE engine_state (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    blind BOOLEAN NOT NULL,
    generation BIGINT NOT NULL
);

CREATE TABLE route_states (
    route TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    active TEXT NOT NULL,
    since BIGINT NOT NULL,
    reason TEXT NOT NULL,
    mode TEXT NOT NULL,
    both_down BOOLEAN NOT NULL,
    failback_ready BOOLEAN NOT NULL
);

CREATE TABLE service_tracks (
    role TEXT NOT NULL,
    kind TEXT NOT NULL,
    healthy BOOLEAN,
    checked_at BIGINT,
    latency_ms BIGINT,
    reason TEXT,
    failing_since BIGINT,
    healthy_since BIGINT,
    PRIMARY KEY (role, kind)
);

-- Bounded by Store::prune_checks.
CREATE TABLE check_results (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role TEXT NOT NULL,
    kind TEXT NOT NULL,
    healthy BOOLEAN NOT NULL,
    latency_us BIGINT,
    reason TEXT,
    checked_at BIGINT NOT NULL
);

CREATE INDEX check_results_by_service ON check_results (role, kind, checked_at DESC, id DESC);
CREATE INDEX check_results_by_time ON check_results (checked_at);

CREATE TABLE events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    route TEXT,
    service_role TEXT,
    service_kind TEXT,
    from_state TEXT,
    to_state TEXT,
    active TEXT,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    CHECK ((service_role IS NULL) = (service_kind IS NULL))
);
