-- De-duplicated storage: an upload whose bytes another image has shares its files (hard
-- links, see blobs.py), found by this index; `duplicate_of` names the uploader's own image
-- with the same bytes at upload time.
ALTER TABLE images ADD COLUMN duplicate_of TEXT;
CREATE INDEX images_sha256 ON images(sha256);
