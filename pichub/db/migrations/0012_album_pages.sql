-- Album pages (/a/{id}): an album may have a password, hashed as user passwords are
-- (hashing.hash_password: scrypt with a random salt). NULL: no password. The album's
-- images are then served at /img only to their owner or through a signed link.

ALTER TABLE albums ADD COLUMN password_hash TEXT;
