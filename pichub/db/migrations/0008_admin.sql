-- Running PicHub for a team: accounts an admin can disable, and uploads per day for the
-- admin overview, kept as a stored counter like those of 0003 (a trigger in the upload's own
-- transaction), so the overview never scans the images.
--
-- A disabled user (is_active = 0) keeps their data; their tokens and sessions are refused at
-- once (the token and session lookups join users on is_active) and the login form refuses
-- them.

ALTER TABLE users ADD COLUMN is_active INTEGER NOT NULL DEFAULT 1;

CREATE TABLE upload_days (
    day     TEXT PRIMARY KEY,                          -- YYYY-MM-DD (UTC)
    uploads INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO upload_days (day, uploads)
    SELECT substr(created_at, 1, 10), COUNT(*) FROM images GROUP BY substr(created_at, 1, 10);

-- Uploads, not images still there: a deleted image stays counted on the day it came.
CREATE TRIGGER images_uploaded_daily AFTER INSERT ON images BEGIN
    INSERT INTO upload_days (day, uploads) VALUES (substr(NEW.created_at, 1, 10), 1)
        ON CONFLICT (day) DO UPDATE SET uploads = uploads + 1;
END;

-- The admin's list of every image, newest first, reads this index (the per-user and public
-- lists have theirs since 0003).
CREATE INDEX images_created ON images(created_at, seq);
