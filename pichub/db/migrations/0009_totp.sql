-- Two-factor sign-in (TOTP) and what the account page shows of each session.
CREATE TABLE totp (
    user_id      INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret       TEXT NOT NULL,              -- sealed with the server key (pichub/sealing.py)
    confirmed_at TEXT,                       -- NULL while enrolling: not yet asked at sign-in
    last_step    INTEGER NOT NULL DEFAULT 0, -- the last 30 s step whose code was accepted
    created_at   TEXT NOT NULL
);

CREATE TABLE recovery_codes (
    id        INTEGER PRIMARY KEY,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,                 -- HMAC-SHA256 under the server key; never the code
    used_at   TEXT
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);

ALTER TABLE sessions ADD COLUMN last_seen_at TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN ip TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_user ON sessions(user_id);
