-- name: LockCustomer
-- Creates a customer in the initial stage $2 if it does not exist, logging that entry as a stage
-- transition stamped with rule-set version $4 (unless $2 is ''), and locks its row, so that one
-- customer's events get ids and facts in commit order; says whether it was created.
-- An existing row is locked, not updated: ON CONFLICT DO UPDATE locks the conflicting row (in the
-- same mode as the update would: id is in the SET list) whether or not its WHERE holds, and
-- WHERE false spares writing a new row version (and its index entries) only to lock it. Only an
-- inserted row is returned.
WITH c AS (
    INSERT INTO customers (id, stage, stage_entered_at, created_at)
    VALUES ($1, $2, $3, $3)
    ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id WHERE false
    RETURNING id
), t AS (
    INSERT INTO stage_transitions (customer_id, to_stage, rule_set_version, occurred_at)
    SELECT $1, $2, $4, $3 FROM c WHERE $2 <> ''
)
SELECT EXISTS (SELECT 1 FROM c) AS created;

-- name: LockCustomers
-- LockCustomer for several customers in one statement: $1 are distinct ids in lock order (sorted),
-- $3 the time each is created at if new (its first event's), $2 the initial stage, $4 the rule-set
-- version. Rows are inserted or locked in the order given, so concurrent calls lock in id order
-- and cannot deadlock; an existing row is locked without a new version, as in LockCustomer.
-- Returns the ids created (not joined back to the input: a generic plan nested-loops such joins).
WITH input AS (
    SELECT id, at, ord FROM unnest($1::text[], $3::timestamptz[]) WITH ORDINALITY AS u(id, at, ord)
), c AS (
    INSERT INTO customers (id, stage, stage_entered_at, created_at)
    SELECT id, $2, at, at FROM input ORDER BY ord
    ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id WHERE false
    RETURNING id, created_at
), t AS (
    INSERT INTO stage_transitions (customer_id, to_stage, rule_set_version, occurred_at)
    SELECT id, $2, $4, created_at FROM c WHERE $2 <> ''
)
SELECT id FROM c;

-- name: LockCustomerStage
-- Locks a customer's row for evaluation and reads its current stage.
SELECT stage FROM customers WHERE id = $1 FOR UPDATE;

-- name: GetCustomer
-- Reads one customer's facts.
SELECT id, email, name, timezone, stage, stage_entered_at, created_at, last_seen_at,
       first_order_at, last_order_at, orders_count, total_spent_cents, attributes, unsubscribed_at
FROM customers
WHERE id = $1;

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
