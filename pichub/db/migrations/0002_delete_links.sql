-- Delete links: one per uploaded image, a random token of which only the SHA-256 is kept
-- (like API tokens). The link deletes the image without signing in, so it is handed out
-- once, in the upload answer; it goes with its image.
CREATE TABLE delete_links (
    image_id   TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,                 -- sha256 hex of the token in the link
    created_at TEXT NOT NULL
);
