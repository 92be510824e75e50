-- Stored counters, so no list, total or quota counts or sums at request time.
-- Triggers keep them in the same transaction as the change they count (a crash
-- rolls both back), cascades included: deleting a user or an album fires them per row.

ALTER TABLE users ADD COLUMN image_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN album_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE albums ADD COLUMN image_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE albums ADD COLUMN cover TEXT;            -- "<id>.<format>" of the newest image, or NULL
ALTER TABLE webhooks ADD COLUMN delivery_count INTEGER NOT NULL DEFAULT 0;

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,                           -- public_images
    value INTEGER NOT NULL
) WITHOUT ROWID;

-- Every list reads `per_page` rows from one of these, newest first.
DROP INDEX images_album;
CREATE INDEX images_album ON images(album_id, created_at, seq);
CREATE INDEX deliveries_finished ON deliveries(status, created_at);
CREATE INDEX events_dispatched ON events(dispatched, created_at);

UPDATE users SET
    image_count = (SELECT COUNT(*) FROM images i WHERE i.user_id = users.id),
    used_bytes = (SELECT COALESCE(SUM(size), 0) FROM images i WHERE i.user_id = users.id),
    album_count = (SELECT COUNT(*) FROM albums a WHERE a.user_id = users.id);
UPDATE albums SET
    image_count = (SELECT COUNT(*) FROM images i WHERE i.album_id = albums.id),
    cover = (SELECT i.id || '.' || i.format FROM images i WHERE i.album_id = albums.id
             ORDER BY i.created_at DESC, i.seq DESC LIMIT 1);
UPDATE webhooks SET
    delivery_count = (SELECT COUNT(*) FROM deliveries d WHERE d.webhook_id = webhooks.id);
INSERT INTO counters (name, value)
    VALUES ('public_images', (SELECT COUNT(*) FROM images WHERE is_public = 1));

CREATE TRIGGER images_counted AFTER INSERT ON images BEGIN
    UPDATE users SET image_count = image_count + 1, used_bytes = used_bytes + NEW.size
        WHERE id = NEW.user_id;
    UPDATE albums SET image_count = image_count + 1,
        cover = (SELECT i.id || '.' || i.format FROM images i WHERE i.album_id = NEW.album_id
                 ORDER BY i.created_at DESC, i.seq DESC LIMIT 1)
        WHERE id = NEW.album_id;
    UPDATE counters SET value = value + NEW.is_public WHERE name = 'public_images';
END;

CREATE TRIGGER images_uncounted AFTER DELETE ON images BEGIN
    UPDATE users SET image_count = image_count - 1, used_bytes = used_bytes - OLD.size
        WHERE id = OLD.user_id;
    UPDATE albums SET image_count = image_count - 1,
        cover = (SELECT i.id || '.' || i.format FROM images i WHERE i.album_id = OLD.album_id
                 ORDER BY i.created_at DESC, i.seq DESC LIMIT 1)
        WHERE id = OLD.album_id;
    UPDATE counters SET value = value - OLD.is_public WHERE name = 'public_images';
END;

CREATE TRIGGER images_moved AFTER UPDATE OF album_id ON images
WHEN OLD.album_id IS NOT NEW.album_id BEGIN
    UPDATE albums SET image_count = image_count - 1,
        cover = (SELECT i.id || '.' || i.format FROM images i WHERE i.album_id = OLD.album_id
                 ORDER BY i.created_at DESC, i.seq DESC LIMIT 1)
        WHERE id = OLD.album_id;
    UPDATE albums SET image_count = image_count + 1,
        cover = (SELECT i.id || '.' || i.format FROM images i WHERE i.album_id = NEW.album_id
                 ORDER BY i.created_at DESC, i.seq DESC LIMIT 1)
        WHERE id = NEW.album_id;
END;

CREATE TRIGGER images_published AFTER UPDATE OF is_public ON images
WHEN OLD.is_public IS NOT NEW.is_public BEGIN
    UPDATE counters SET value = value + NEW.is_public - OLD.is_public
        WHERE name = 'public_images';
END;

CREATE TRIGGER images_resized AFTER UPDATE OF size, user_id ON images
WHEN OLD.size IS NOT NEW.size OR OLD.user_id IS NOT NEW.user_id BEGIN
    UPDATE users SET image_count = image_count - 1, used_bytes = used_bytes - OLD.size
        WHERE id = OLD.user_id;
    UPDATE users SET image_count = image_count + 1, used_bytes = used_bytes + NEW.size
        WHERE id = NEW.user_id;
END;

CREATE TRIGGER albums_counted AFTER INSERT ON albums BEGIN
    UPDATE users SET album_count = album_count + 1 WHERE id = NEW.user_id;
END;

CREATE TRIGGER albums_uncounted AFTER DELETE ON albums BEGIN
    UPDATE users SET album_count = album_count - 1 WHERE id = OLD.user_id;
END;

CREATE TRIGGER deliveries_counted AFTER INSERT ON deliveries
WHEN NEW.webhook_id IS NOT NULL BEGIN
    UPDATE webhooks SET delivery_count = delivery_count + 1 WHERE id = NEW.webhook_id;
END;

CREATE TRIGGER deliveries_uncounted AFTER DELETE ON deliveries
WHEN OLD.webhook_id IS NOT NULL BEGIN
    UPDATE webhooks SET delivery_count = delivery_count - 1 WHERE id = OLD.webhook_id;
END;
