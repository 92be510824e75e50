-- Sessions get a real `id` column: the number the account page shows and the "sign this
-- browser out" form sends was SQLite's implicit rowid, which no other engine has. The
-- table is rebuilt with `id` as its key (existing rows keep their rowid as their id) and
-- `id_hash` stays unique, so every lookup by cookie hash works as before.

CREATE TABLE sessions_new (
    id           INTEGER PRIMARY KEY,
    id_hash      TEXT NOT NULL UNIQUE,               -- sha256 hex of the cookie value
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    last_seen_at TEXT,
    user_agent   TEXT NOT NULL DEFAULT '',
    ip           TEXT NOT NULL DEFAULT '',
    method       TEXT NOT NULL DEFAULT 'password'
        CHECK (method IN ('password', 'totp', 'sso', 'signup'))
);
INSERT INTO sessions_new (id, id_hash, user_id, csrf_token, created_at, expires_at,
                          last_seen_at, user_agent, ip, method)
    SELECT rowid, id_hash, user_id, csrf_token, created_at, expires_at,
           last_seen_at, user_agent, ip, method FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_user ON sessions(user_id);
