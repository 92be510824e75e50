-- Expiring albums: `expires_at` (ISO 8601 UTC, `Z`; NULL: never). From then on the
-- album's page answers 410 and the expiry sweep (services/expiry.py) deletes the album;
-- its images stay, out of any album. Indexed for the sweep as images' expiry is (0007).

ALTER TABLE albums ADD COLUMN expires_at TEXT;
CREATE INDEX albums_expiry ON albums(expires_at) WHERE expires_at IS NOT NULL;
