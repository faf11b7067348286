-- The route engine's state, the check history and the event history.
--
-- Conventions shared with migrations/postgres (the queries in crates/store are the
-- same text for both backends):
-- * every time is INTEGER microseconds since the Unix epoch, UTC;
-- * every enum is its text spelling (`failed_over`, `backup`, ...), checked by the
--   loader rather than by CHECK constraints, so a new variant needs no table rebuild;
-- * flags are INTEGER 0/1 here and BOOLEAN in PostgreSQL.

-- One row (id = 1) once the engine has saved a step; its absence means a fresh store.
CREATE TABLE engine_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    blind INTEGER NOT NULL CHECK (blind IN (0, 1)),
    generation INTEGER NOT NULL
) STRICT;

CREATE TABLE route_states (
    route TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    active TEXT NOT NULL,
    since INTEGER NOT NULL,
    reason TEXT NOT NULL,
    mode TEXT NOT NULL,
    both_down INTEGER NOT NULL CHECK (both_down IN (0, 1)),
    failback_ready INTEGER NOT NULL CHECK (failback_ready IN (0, 1))
) STRICT;

CREATE TABLE service_tracks (
    role TEXT NOT NULL,
    kind TEXT NOT NULL,
    healthy INTEGER CHECK (healthy IN (0, 1)),
    checked_at INTEGER,
    latency_ms INTEGER,
    reason TEXT,
    failing_since INTEGER,
    healthy_since INTEGER,
    PRIMARY KEY (role, kind)
) STRICT;

-- Bounded by Store::prune_checks.
CREATE TABLE check_results (
    id INTEGER PRIMARY KEY,
    role TEXT NOT NULL,
    kind TEXT NOT NULL,
    healthy INTEGER NOT NULL CHECK (healthy IN (0, 1)),
    latency_us INTEGER,
    reason TEXT,
    checked_at INTEGER NOT NULL
) STRICT;

CREATE INDEX check_results_by_service ON check_results (role, kind, checked_at DESC, id DESC);
CREATE INDEX check_results_by_time ON check_results (checked_at);

-- AUTOINCREMENT: an event id is never reused, even after the newest rows are deleted,
-- because pages (and later the alert outbox) refer to events by id.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
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
) STRICT;
