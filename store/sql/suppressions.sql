-- name: AddSuppression
-- Suppresses an address; the first reason recorded is kept.
INSERT INTO suppressions (email, reason, detail, created_at)
VALUES (lower($1), $2, $3, $4)
ON CONFLICT (email) DO NOTHING;

-- name: GetSuppression
-- Reads why an address is suppressed.
SELECT reason FROM suppressions WHERE email = lower($1);
