-- The tables of `[cluster]`, which needs PostgreSQL: kept here too so that both
-- backends have one schema (see migrations/postgres/20261201000100_cluster.sql).
ALTER TABLE check_results ADD COLUMN vantage TEXT;

CREATE TABLE cluster_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT,
    term INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO cluster_lease (id, holder, term, expires_at) VALUES (1, NULL, 0, 0);

CREATE TABLE cluster_nodes (
    node TEXT PRIMARY KEY,
    vantage TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);

CREATE TABLE vantage_checks (
    vantage TEXT NOT NULL,
    role TEXT NOT NULL,
    kind TEXT NOT NULL,
    node TEXT NOT NULL,
    healthy INTEGER NOT NULL,
    latency_us INTEGER,
    reason TEXT,
    checked_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (vantage, role, kind)
);

CREATE TABLE operator_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    route TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    node TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    finished_at INTEGER
);
CREATE INDEX operator_requests_pending ON operator_requests (status, id);
