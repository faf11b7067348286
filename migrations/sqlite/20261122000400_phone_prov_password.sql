-- The password a phone fetches its own file with (HTTP Digest; the username is its MAC).
-- NULL: the phone has none. An import without the column (a seven-column CSV) sets it
-- back to NULL, as it sets every other field to what the file says.
ALTER TABLE phones ADD COLUMN prov_password TEXT;
