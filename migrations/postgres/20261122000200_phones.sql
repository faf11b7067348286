-- The phone inventory and each phone's latest fetch of its file.
-- Same conventions as 20261122000100_engine.sql.

-- `updated_at` moves on every import that touches the row, so a running switchback
-- notices an import made by another process (see Store::phones_revision).
CREATE TABLE phones (
    mac TEXT PRIMARY KEY,
    vendor TEXT NOT NULL,
    model TEXT NOT NULL,
    display_name TEXT NOT NULL,
    user_id TEXT NOT NULL,
    auth_id TEXT NOT NULL,
    password TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row per phone: its latest fetch, and how many it has made. Fetches are counted,
-- not kept one row each: 100,000 phones polling every minute would add 144 million
-- rows a day.
CREATE TABLE phone_fetches (
    mac TEXT PRIMARY KEY,
    vendor TEXT NOT NULL,
    at BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    source TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    fetches BIGINT NOT NULL
);
