-- What an image's answer tells about it besides its file, computed once at upload
-- (imaging/placeholders.py, imaging/exif.py): a BlurHash and the dominant colour, and a
-- summary of the EXIF the stored file keeps. The GPS position has columns of its own, filled
-- only when the stored file keeps its location (`keep_location`), and answered only to the
-- owner who asks (`GET /images/{id}?include=gps`).
--
-- meta_version says which computation filled these columns: 0 (every row from before this
-- migration) = not yet; `pichub backfill` computes the rows below the current version.

ALTER TABLE images ADD COLUMN blurhash TEXT;
ALTER TABLE images ADD COLUMN dominant_color TEXT;              -- #rrggbb
ALTER TABLE images ADD COLUMN exif TEXT;                        -- JSON object, no GPS; NULL: none
ALTER TABLE images ADD COLUMN gps_latitude REAL;
ALTER TABLE images ADD COLUMN gps_longitude REAL;
ALTER TABLE images ADD COLUMN gps_altitude REAL;
ALTER TABLE images ADD COLUMN meta_version INTEGER NOT NULL DEFAULT 0;
