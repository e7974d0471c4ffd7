-- name: AddSuppression
-- Suppresses an address; the first reason recorded is kept.
INSERT INTO suppressions (email, reason, detail, created_at)
VALUES (lower($1), $2, $3, $4)
ON CONFLICT (email) DO NOTHING;

-- name: GetSuppression
-- Reads why an address is suppressed.
SELECT reason FROM suppressions WHERE email = lower($1);

-- name: InsertSuppression
-- Suppresses an address unless it already is; returns the new row, or no row if it existed.
INSERT INTO suppressions (email, reason, detail, created_at)
VALUES (lower($1), $2, $3, $4)
ON CONFLICT (email) DO NOTHING
RETURNING email, reason, detail, created_at;

-- name: GetSuppressionRow
-- Reads an address's suppression.
SELECT email, reason, detail, created_at FROM suppressions WHERE email = lower($1);

-- name: DeleteSuppression
-- Lifts an address's suppression and clears the unsubscribed mark of customers with that
-- address, in one statement; returns the number of suppressions deleted (0 or 1).
WITH d AS (
    DELETE FROM suppressions WHERE email = lower($1) RETURNING email
), u AS (
    UPDATE customers SET unsubscribed_at = NULL
    WHERE lower(email) = lower($1) AND unsubscribed_at IS NOT NULL AND EXISTS (SELECT 1 FROM d)
)
SELECT count(*) FROM d;
