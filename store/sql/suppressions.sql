-- name: AddSuppression
-- Suppresses an address; the first reason recorded is kept.
INSERT INTO suppressions (email, reason, detail, created_at)
VALUES (lower($1), $2, $3, $4)
ON CONFLICT (email) DO NOTHING;

-- name: AddUnsubscribe
-- Suppresses an address as unsubscribed. Unsubscribing is the person's own choice, so it
-- replaces an earlier reason (a bounce, a manual entry): lifting that reason later must not
-- re-subscribe them.
INSERT INTO suppressions (email, reason, detail, created_at)
VALUES (lower($1), 'unsubscribed', '', $2)
ON CONFLICT (email) DO UPDATE SET reason = 'unsubscribed', detail = '', created_at = EXCLUDED.created_at
WHERE suppressions.reason <> 'unsubscribed';

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
-- Lifts an address's suppression; when it was an unsubscribe, also clears the unsubscribed mark
-- of customers with that address (the person opted in again). Returns the number of
-- suppressions deleted (0 or 1).
WITH d AS (
    DELETE FROM suppressions WHERE email = lower($1) RETURNING email, reason
), u AS (
    UPDATE customers SET unsubscribed_at = NULL
    WHERE lower(email) = lower($1) AND unsubscribed_at IS NOT NULL
      AND EXISTS (SELECT 1 FROM d WHERE reason = 'unsubscribed')
)
SELECT count(*) FROM d;
