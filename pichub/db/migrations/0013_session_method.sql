-- How each session was signed in: 'password', 'totp' (password and a code or recovery code),
-- 'sso' (single sign-on: the provider checked the user and does MFA if it is set up there)
-- or 'signup' (a new account). auth.require_totp_for_admins sends an admin to set up
-- two-factor sign-in unless the session came through single sign-on. Sessions from before
-- this migration count as password sign-ins (the stricter reading).

ALTER TABLE sessions ADD COLUMN method TEXT NOT NULL DEFAULT 'password'
    CHECK (method IN ('password', 'totp', 'sso', 'signup'));
