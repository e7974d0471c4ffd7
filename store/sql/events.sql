-- name: InsertEvent
-- Inserts an event; returns no row when the idempotency key was seen before for this customer.
INSERT INTO events (customer_id, type, properties, occurred_at, received_at, idempotency_key)
VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''))
ON CONFLICT (customer_id, idempotency_key) DO NOTHING
RETURNING id;

-- name: GetEventIDByKey
-- Finds the event an idempotency key was first used for.
SELECT id FROM events WHERE customer_id = $1 AND idempotency_key = $2;

-- name: GetEvent
-- Reads one event.
SELECT id, customer_id, type, properties, occurred_at, received_at, COALESCE(idempotency_key, '')
FROM events
WHERE customer_id = $1 AND id = $2;

-- name: PendingEvents
-- Reads a customer's events not yet evaluated, up to and including one id, in order.
SELECT id, type, properties, occurred_at, facts
FROM events
WHERE customer_id = $1 AND id <= $2 AND evaluated_at IS NULL
ORDER BY id;

-- name: MarkEvaluated
-- Marks a customer's events as evaluated.
UPDATE events SET evaluated_at = $3 WHERE customer_id = $1 AND id = ANY($2);
