-- Single sign-on (OpenID Connect): who a provider's user is here.
-- A provider's user is (issuer, sub): the only pair the specification promises is stable and
-- never reassigned. The e-mail is kept for linking and for the admin's eyes only.
CREATE TABLE oidc_identities (
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email         TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    last_login_at TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX oidc_identities_user ON oidc_identities(user_id);

-- An account's e-mail address: set by single sign-on (a created account) or by the admin
-- (`pichub user email`), matched case-insensitively when oidc.link_by_email is on.
ALTER TABLE users ADD COLUMN email TEXT;
CREATE UNIQUE INDEX users_email ON users(email COLLATE NOCASE) WHERE email IS NOT NULL;
