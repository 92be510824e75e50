-- Sign-up by invitation: single-use links an admin makes, each with an expiry.
--
-- Only the SHA-256 of the link's secret is kept (like API tokens), so a copy of the database
-- hands out no usable invite. An invite is used by the one UPDATE that sets used_at where it
-- is still NULL, in the transaction that creates the account: of two sign-ups racing on one
-- link, only one finds it unused.
CREATE TABLE invites (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    note        TEXT NOT NULL DEFAULT '',
    quota_mb    INTEGER,                     -- the new account's quota; NULL = no limit
    created_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    used_by     INTEGER REFERENCES users(id) ON DELETE SET NULL,
    revoked_at  TEXT
);
