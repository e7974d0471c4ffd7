-- name: LockCustomer
-- Creates a customer in the initial stage if it does not exist and locks its row, so that one
-- customer's events get ids and facts in commit order; says whether it was created.
INSERT INTO customers (id, stage, stage_entered_at, created_at)
VALUES ($1, $2, $3, $3)
ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id
RETURNING xmax = 0;

-- name: LockCustomerStage
-- Locks a customer's row for evaluation and reads its current stage.
SELECT stage FROM customers WHERE id = $1 FOR UPDATE;

-- name: ApplyEventFacts
-- Folds one new event into the customer's facts (contact details, activity, order totals),
-- keeps them on the event as the snapshot its rules see, and returns them.
WITH c AS (
UPDATE customers SET
    email             = COALESCE(NULLIF($2, ''), email),
    name              = COALESCE(NULLIF($3, ''), name),
    timezone          = COALESCE(NULLIF($4, ''), timezone),
    last_seen_at      = GREATEST(last_seen_at, $5),
    first_order_at    = CASE WHEN $6 THEN LEAST(first_order_at, $5) ELSE first_order_at END,
    last_order_at     = CASE WHEN $6 THEN GREATEST(last_order_at, $5) ELSE last_order_at END,
    orders_count      = orders_count + CASE WHEN $6 THEN 1 ELSE 0 END,
    total_spent_cents = total_spent_cents + $7,
    attributes        = attributes || $8
WHERE id = $1
RETURNING id, email, name, timezone, stage, stage_entered_at, created_at, last_seen_at,
          first_order_at, last_order_at, orders_count, total_spent_cents, attributes, unsubscribed_at
), e AS (
    UPDATE events SET facts = (SELECT to_jsonb(c) FROM c) WHERE customer_id = $1 AND id = $9
)
SELECT * FROM c;

-- name: GetCustomer
-- Reads one customer's facts.
SELECT id, email, name, timezone, stage, stage_entered_at, created_at, last_seen_at,
       first_order_at, last_order_at, orders_count, total_spent_cents, attributes, unsubscribed_at
FROM customers
WHERE id = $1;

-- name: SetCustomerStage
-- Moves a customer to a stage; returns the stage it left, or no row if it was already there.
UPDATE customers AS c SET stage = $2, stage_entered_at = $3
FROM (SELECT id, stage FROM customers WHERE id = $1 FOR UPDATE) AS old
WHERE c.id = old.id AND old.stage IS DISTINCT FROM $2
RETURNING old.stage;

-- name: UnsubscribeCustomers
-- Marks unsubscribed the customer a link was sent to (even if its address changed since) and
-- every customer with that address.
UPDATE customers SET unsubscribed_at = COALESCE(unsubscribed_at, $2)
WHERE id = $3 OR lower(email) = lower($1);

-- name: ListCustomersAfter
-- Reads one page of customers in key order after a given id (streaming, read-only tools).
SELECT id, email, name, timezone, stage, stage_entered_at, created_at, last_seen_at,
       first_order_at, last_order_at, orders_count, total_spent_cents, attributes, unsubscribed_at
FROM customers
WHERE id > $1
ORDER BY id
LIMIT $2;

-- name: SampleCustomers
-- Reads a random sample of about $1 customers (rules diff --sample).
SELECT id, email, name, timezone, stage, stage_entered_at, created_at, last_seen_at,
       first_order_at, last_order_at, orders_count, total_spent_cents, attributes, unsubscribed_at
FROM customers
ORDER BY random()
LIMIT $1;
