-- Several instances over this store (`[cluster]`). Same conventions as
-- 20261122000100_engine.sql. A single instance leaves these tables empty, except the
-- lease row, which nobody holds.

-- Which vantage point made a check; NULL for a single instance's own checks.
ALTER TABLE check_results ADD COLUMN vantage TEXT;

-- The leader's lease: one row. `term` grows with every new leadership, and every write
-- a leader makes as leader checks, in its transaction, that the term is still its own.
-- `expires_at` is on the store's clock, so the instances' clocks never have to agree.
CREATE TABLE cluster_lease (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    holder TEXT,
    term BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
INSERT INTO cluster_lease (id, holder, term, expires_at) VALUES (1, NULL, 0, 0);

-- Every instance of the group, as it last said it was alive.
CREATE TABLE cluster_nodes (
    node TEXT PRIMARY KEY,
    vantage TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);

-- Each vantage's latest check of each service: what the leader counts for a quorum.
CREATE TABLE vantage_checks (
    vantage TEXT NOT NULL,
    role TEXT NOT NULL,
    kind TEXT NOT NULL,
    node TEXT NOT NULL,
    healthy BOOLEAN NOT NULL,
    latency_us BIGINT,
    reason TEXT,
    checked_at BIGINT NOT NULL,
    -- On the store's clock: what freshness is judged by.
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (vantage, role, kind)
);

-- Operator actions sent to an instance that does not lead: the leader takes them
-- (status `taken`), applies them and says how it went (`done` or `refused`).
CREATE TABLE operator_requests (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    route TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    node TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- pending | taken | done | refused | expired
    status TEXT NOT NULL,
    detail TEXT,
    finished_at BIGINT
);
CREATE INDEX operator_requests_pending ON operator_requests (status, id);
