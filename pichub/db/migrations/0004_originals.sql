-- Originals kept beside the stored image: a HEIC upload is stored as WebP or JPEG (browsers
-- cannot show HEIC) and its uploaded bytes are kept as `<id>.orig.heic`, for the owner to
-- download. The quota counts both files, so the byte counter of 0003 adds original_size.

ALTER TABLE images ADD COLUMN original_format TEXT;               -- heic, or NULL: none kept
ALTER TABLE images ADD COLUMN original_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE images ADD COLUMN original_sha256 TEXT;

DROP TRIGGER images_counted;
CREATE TRIGGER images_counted AFTER INSERT ON images BEGIN
    UPDATE users SET image_count = image_count + 1,
        used_bytes = used_bytes + NEW.size + NEW.original_size
        WHERE id = NEW.user_id;
    UPDATE albums SET image_count = image_count + 1,
        cover = (SELECT i.id || '.' || i.format FROM images i WHERE i.album_id = NEW.album_id
                 ORDER BY i.created_at DESC, i.seq DESC LIMIT 1)
        WHERE id = NEW.album_id;
    UPDATE counters SET value = value + NEW.is_public WHERE name = 'public_images';
END;

DROP TRIGGER images_uncounted;
CREATE TRIGGER images_uncounted AFTER DELETE ON images BEGIN
    UPDATE users SET image_count = image_count - 1,
        used_bytes = used_bytes - OLD.size - OLD.original_size
        WHERE id = OLD.user_id;
    UPDATE albums SET image_count = image_count - 1,
        cover = (SELECT i.id || '.' || i.format FROM images i WHERE i.album_id = OLD.album_id
                 ORDER BY i.created_at DESC, i.seq DESC LIMIT 1)
        WHERE id = OLD.album_id;
    UPDATE counters SET value = value - OLD.is_public WHERE name = 'public_images';
END;

DROP TRIGGER images_resized;
CREATE TRIGGER images_resized AFTER UPDATE OF size, original_size, user_id ON images
WHEN OLD.size IS NOT NEW.size OR OLD.original_size IS NOT NEW.original_size
     OR OLD.user_id IS NOT NEW.user_id BEGIN
    UPDATE users SET image_count = image_count - 1,
        used_bytes = used_bytes - OLD.size - OLD.original_size
        WHERE id = OLD.user_id;
    UPDATE users SET image_count = image_count + 1,
        used_bytes = used_bytes + NEW.size + NEW.original_size
        WHERE id = NEW.user_id;
END;
