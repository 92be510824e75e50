-- PicHub schema v1. Timestamps are ISO 8601 UTC strings ending in Z.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    quota_mb      INTEGER,                      -- NULL = unlimited
    created_at    TEXT NOT NULL
);

CREATE TABLE tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL DEFAULT '',
    token_hash   TEXT NOT NULL UNIQUE,           -- sha256 hex of the token; the token itself is never stored
    scope        TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE albums (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    is_public   INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX albums_user ON albums(user_id, created_at, id);

CREATE TABLE images (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT, -- insertion order, breaks ties of created_at
    id            TEXT NOT NULL UNIQUE,              -- public, random, URL-safe
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    album_id      INTEGER REFERENCES albums(id) ON DELETE SET NULL,
    filename      TEXT NOT NULL,
    original_name TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    format        TEXT NOT NULL,                     -- jpeg | png | webp | gif | avif
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    frames        INTEGER NOT NULL DEFAULT 1,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    is_public     INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL
);
CREATE INDEX images_user ON images(user_id, created_at, seq);
CREATE INDEX images_album ON images(album_id);
CREATE INDEX images_public ON images(is_public, created_at, seq);

-- The outbox: written in the same transaction as the change it describes.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,                -- evt_…, the webhook-id of every attempt
    user_id    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,                       -- JSON of the whole body {id, type, created_at, data}
    created_at TEXT NOT NULL,
    dispatched INTEGER NOT NULL DEFAULT 0            -- 1 once fanned out into deliveries
);
CREATE INDEX events_pending ON events(dispatched, seq);

CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,                      -- whsec_…; needed in clear to sign
    events      TEXT,                               -- JSON list; NULL = every event
    description TEXT NOT NULL DEFAULT '',
    is_active   INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX webhooks_user ON webhooks(user_id);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      INTEGER REFERENCES webhooks(id) ON DELETE CASCADE, -- NULL = the global endpoint of the config
    event_id        TEXT NOT NULL,
    type            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempt         INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    response_status INTEGER,
    error           TEXT,
    created_at      TEXT NOT NULL,
    next_attempt_at TEXT,
    delivered_at    TEXT
);
CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at);
CREATE INDEX deliveries_webhook ON deliveries(webhook_id, id);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,                     -- sha256 hex of the cookie value
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
