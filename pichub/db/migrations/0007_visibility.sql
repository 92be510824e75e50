-- Sharing: who may open an image, and how long it lives.
--
-- `visibility` is the truth: public (listed on the square), unlisted (anyone with the URL),
-- private (its owner, or a signed link). `is_public` stays as the seed's alias and as what
-- the square's index and the `public_images` counter of 0003 read: the triggers below keep
-- it equal to (visibility = 'public') in the same statement, so images_counted,
-- images_uncounted and images_published keep the counter exact (an insert counts
-- is_public's default 1 first, then the correction counts it back out).
--
-- `expires_at` (ISO 8601 UTC, NULL: never) is what the expiry sweep reads, by its index;
-- an image whose `max_views` are used up gets `expires_at` set to that moment, so the same
-- index finds it. `views` counts the views since `max_views` was set.

ALTER TABLE images ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'
    CHECK (visibility IN ('public', 'unlisted', 'private'));
ALTER TABLE images ADD COLUMN expires_at TEXT;
ALTER TABLE images ADD COLUMN max_views INTEGER;
ALTER TABLE images ADD COLUMN views INTEGER NOT NULL DEFAULT 0;
UPDATE images SET visibility = 'unlisted' WHERE is_public = 0;
CREATE INDEX images_expiry ON images(expires_at) WHERE expires_at IS NOT NULL;

CREATE TRIGGER images_visibility_inserted AFTER INSERT ON images
WHEN NEW.is_public IS NOT (NEW.visibility = 'public') BEGIN
    UPDATE images SET is_public = (NEW.visibility = 'public') WHERE seq = NEW.seq;
END;

CREATE TRIGGER images_visibility_changed AFTER UPDATE OF visibility, is_public ON images
WHEN NEW.is_public IS NOT (NEW.visibility = 'public') BEGIN
    UPDATE images SET is_public = (NEW.visibility = 'public') WHERE seq = NEW.seq;
END;

-- Albums say who may see them the same way (their pages come later); is_public follows.
ALTER TABLE albums ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'
    CHECK (visibility IN ('public', 'unlisted', 'private'));
UPDATE albums SET visibility = 'unlisted' WHERE is_public = 0;

CREATE TRIGGER albums_visibility_inserted AFTER INSERT ON albums
WHEN NEW.is_public IS NOT (NEW.visibility = 'public') BEGIN
    UPDATE albums SET is_public = (NEW.visibility = 'public') WHERE id = NEW.id;
END;

CREATE TRIGGER albums_visibility_changed AFTER UPDATE OF visibility, is_public ON albums
WHEN NEW.is_public IS NOT (NEW.visibility = 'public') BEGIN
    UPDATE albums SET is_public = (NEW.visibility = 'public') WHERE id = NEW.id;
END;

-- Server secrets made once per instance (and kept by backups): `link_key` signs the
-- time-limited links to images (POST /images/{id}/links).
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO secrets (name, value) VALUES ('link_key', lower(hex(randomblob(32))));
