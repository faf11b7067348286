-- Pictures of a failover: when each phone first fetched each generation, and when each
-- generation started. Same conventions as 20261122000100_engine.sql.

-- One row per (generation, phone), written with the phone's latest fetch
-- (Store::record_fetches, same transaction) and never updated: the convergence curve of
-- a generation and the report's 50/95/100 % times. `first_at` is the fetch log's folded
-- record, so it may be up to one flush (2 s) later than the phone's very first fetch.
-- 100,000 phones add 100,000 rows per generation: a few per failover, not per poll;
-- pruned with the check history (store.check_retention) once a later generation started.
CREATE TABLE generation_fetches (
    generation INTEGER NOT NULL,
    mac TEXT NOT NULL,
    vendor TEXT NOT NULL,
    first_at INTEGER NOT NULL,
    PRIMARY KEY (generation, mac)
) STRICT;

-- When each generation started: written with the step that created it (the step's
-- earliest event), or, for a generation the store first sees (a fresh store's first,
-- the current one of a store made before this migration), when its first step is saved.
CREATE TABLE generations (
    generation INTEGER PRIMARY KEY,
    started_at INTEGER NOT NULL
) STRICT;

-- The timeline and the report read the events of a window (Store::events_since).
CREATE INDEX events_by_at ON events (at);
