-- Which phones last fetched a generation (`/api/phones?generation=N`, Store::phone_page):
-- right after a failover, and once phones converge, the interesting generation is held
-- by few phones, and this finds them, in MAC order, without a pass over the inventory.
-- No index on `at`: every flush of fetch records moves it, and the stale filter has to
-- visit every phone anyway (a phone that never fetched has no row here to find).
CREATE INDEX phone_fetches_by_generation ON phone_fetches (generation, mac);
