-- name: GrantPoints
-- Grants lots given as arrays (customer, amount, reason, rule, firing, order, granted, available,
-- expires, key), each with its grant entry, skipping keys already granted; returns every lot's id
-- in input order with whether this call created it.
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                         $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[])
        WITH ORDINALITY AS i (customer_id, amount, reason, rule, firing_id, order_id,
                              granted_at, available_at, expires_at, idempotency_key, ord)
), lot AS (
    INSERT INTO points_lots (customer_id, amount, remaining, reason, rule, firing_id, order_id,
                             granted_at, available_at, expires_at, idempotency_key)
    SELECT customer_id, amount, amount, reason, rule, firing_id, order_id,
           granted_at, available_at, expires_at, idempotency_key
    FROM input ORDER BY ord
    ON CONFLICT (customer_id, idempotency_key) DO NOTHING
    RETURNING id, customer_id, amount, granted_at, idempotency_key
), entry AS (
    INSERT INTO points_entries (customer_id, lot_id, kind, amount, created_at)
    SELECT customer_id, id, 'grant', amount, granted_at FROM lot
)
SELECT input.ord, COALESCE(lot.id, old.id), lot.id IS NOT NULL
FROM input
LEFT JOIN lot ON lot.customer_id = input.customer_id AND lot.idempotency_key = input.idempotency_key
LEFT JOIN points_lots old ON old.customer_id = input.customer_id AND old.idempotency_key = input.idempotency_key
ORDER BY input.ord;

-- name: LockPointsCustomer
-- Locks a customer's row so that its points operations run one at a time.
SELECT id FROM customers WHERE id = $1 FOR UPDATE;

-- name: GetPointsOperation
-- Reads the operation an idempotency key was first used for.
SELECT id, kind, points, order_id, reason, created_at
FROM points_operations
WHERE customer_id = $1 AND idempotency_key = $2;

-- name: InsertPointsOperation
-- Records a spending operation; run after LockPointsCustomer and GetPointsOperation.
INSERT INTO points_operations (customer_id, kind, points, order_id, reason, idempotency_key, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id;

-- name: GetSpendable
-- Sums what a customer can spend at $2: what is left of its available, unexpired lots, less its
-- debts (reversals of points already spent).
SELECT
    COALESCE((SELECT sum(remaining) FROM points_lots
              WHERE customer_id = $1 AND remaining > 0 AND expired_at IS NULL
                AND available_at <= $2 AND (expires_at IS NULL OR expires_at > $2)), 0)
  + COALESCE((SELECT sum(amount) FROM points_entries WHERE customer_id = $1 AND kind = 'debt'), 0);

-- name: TakePoints
-- Takes up to $2 points from a customer's lots, those expiring soonest first, recording an entry
-- of kind $5 for operation $4 per lot touched; returns the total taken. With order $6 it takes
-- from what is left of the lots that order earned, pending or not (a reversal); without, from the
-- lots available and unexpired at $3.
WITH avail AS (
    SELECT id, remaining,
           sum(remaining) OVER (ORDER BY expires_at NULLS LAST, id) AS upto
    FROM points_lots
    WHERE customer_id = $1 AND remaining > 0 AND expired_at IS NULL
      AND CASE WHEN $6 = '' THEN available_at <= $3 AND (expires_at IS NULL OR expires_at > $3)
               ELSE order_id = $6 END
), take AS (
    SELECT id, LEAST(remaining, $2 - (upto - remaining)) AS n FROM avail WHERE upto - remaining < $2
), upd AS (
    UPDATE points_lots l SET remaining = l.remaining - take.n
    FROM take
    WHERE l.customer_id = $1 AND l.id = take.id
    RETURNING l.id, take.n
), entry AS (
    INSERT INTO points_entries (customer_id, lot_id, operation_id, kind, amount, created_at)
    SELECT $1, id, $4, $5, -n, $3 FROM upd
)
SELECT COALESCE(sum(n), 0)::bigint FROM upd;

-- name: GetOrderPointsEarned
-- Sums the points order $2 earned that have not expired: what a reversal takes back.
SELECT COALESCE(sum(l.amount), 0)::bigint
     + COALESCE((SELECT sum(e.amount) FROM points_entries e
                 JOIN points_lots x ON x.customer_id = e.customer_id AND x.id = e.lot_id
                 WHERE e.customer_id = $1 AND x.order_id = $2 AND e.kind = 'expire'), 0)::bigint
FROM points_lots l
WHERE l.customer_id = $1 AND l.order_id = $2;

-- name: InsertPointsEntry
-- Records an entry on no lot (a debt) or on a lot (an adjustment).
INSERT INTO points_entries (customer_id, lot_id, operation_id, kind, amount, created_at)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: PointsSweepSettings
-- Plans the expiry and reminder statements of the current transaction: their locked lots join
-- back to points_lots by ctid or primary key (a nested loop; hashing would scan the whole table
-- once a batch, so a run would grow with the square of the lots), without JIT, sorting in memory.
SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
       set_config('jit', 'off', true), set_config('work_mem', '64MB', true);

-- name: ExpirePoints
-- Expires up to @limit lots whose expiry is at or before @at and that have something left, of the
-- customers in part @part of @parts (by hash of the customer id, so that @parts sweeps run side
-- by side on disjoint lots and customers), after the sweep's cursor (@after_expires,
-- @after_customer, @after_id) in the order of the partial index points_lots_expiry_idx, so each
-- batch starts where the last one ended instead of walking the index entries the earlier batches
-- left dead. What is left of each lot becomes an expiry entry. Returns one row per customer: its
-- lots expired (ids), the points they lost, their latest expiry, and on every row the cursor of
-- the last lot taken and how many were. Lots a concurrent spend holds are skipped and expire in
-- the next run. The update finds each locked lot by its ctid (the version locked, which no one
-- else can change before commit) rather than by a descent of the primary key, and takes them in
-- customer order, so that its index and entry inserts land next to one another; a lot a spend
-- changed after the statement's snapshot was taken is locked but not seen there, and is left
-- whole for the next run.
WITH due AS (
    SELECT ctid AS tid, customer_id, id, remaining, expires_at FROM points_lots
    WHERE expires_at <= @at AND remaining > 0 AND expired_at IS NULL AND expires_at IS NOT NULL
      AND (expires_at, customer_id, id) > (@after_expires::timestamptz, @after_customer::text, @after_id::bigint)
      AND (hashtext(customer_id) & 2147483647) % @parts::int = @part::int
    ORDER BY expires_at, customer_id, id
    LIMIT @limit
    FOR UPDATE SKIP LOCKED
), last AS (
    SELECT expires_at, customer_id, id, (SELECT count(*) FROM due) AS n FROM due
    ORDER BY expires_at DESC, customer_id DESC, id DESC LIMIT 1
), upd AS (
    UPDATE points_lots l SET remaining = 0, expired_at = @at
    FROM (SELECT * FROM due ORDER BY customer_id, id) due
    WHERE l.ctid = due.tid
    RETURNING l.customer_id, l.id, due.remaining, l.expires_at
), entry AS (
    INSERT INTO points_entries (customer_id, lot_id, kind, amount, created_at)
    SELECT customer_id, id, 'expire', -remaining, @at FROM upd
)
SELECT u.customer_id, array_agg(u.id ORDER BY u.id), sum(u.remaining)::bigint, max(u.expires_at),
       last.expires_at, last.customer_id, last.id, last.n
FROM upd u CROSS JOIN last
GROUP BY u.customer_id, last.expires_at, last.customer_id, last.id, last.n
ORDER BY u.customer_id;

-- name: GetPointsSummary
-- Reads a customer's points at $2: balance (the ledger's sum), pending, the earliest expiry of
-- what is left and available, and the customer's tier.
SELECT
    COALESCE((SELECT sum(amount) FROM points_entries WHERE customer_id = $1), 0)::bigint,
    COALESCE((SELECT sum(remaining) FROM points_lots
              WHERE customer_id = $1 AND remaining > 0 AND expired_at IS NULL
                AND available_at > $2 AND (expires_at IS NULL OR expires_at > $2)), 0)::bigint,
    (SELECT min(expires_at) FROM points_lots
     WHERE customer_id = $1 AND remaining > 0 AND expired_at IS NULL
       AND available_at <= $2 AND expires_at > $2),
    COALESCE((SELECT tier FROM customers WHERE id = $1), '');

-- name: ListPointsLots
-- Lists a customer's lots with something left, soonest expiry first.
SELECT id, amount, remaining, reason, rule, order_id, granted_at, available_at, expires_at
FROM points_lots
WHERE customer_id = $1 AND remaining > 0 AND expired_at IS NULL
ORDER BY expires_at NULLS LAST, id;

-- name: ListPointsEntries
-- Lists a customer's latest entries, newest first.
SELECT e.id, e.lot_id, e.kind, e.amount, e.created_at, COALESCE(o.reason, l.reason, ''), COALESCE(o.order_id, l.order_id, '')
FROM points_entries e
LEFT JOIN points_operations o ON o.customer_id = e.customer_id AND o.id = e.operation_id
LEFT JOIN points_lots l ON l.customer_id = e.customer_id AND l.id = e.lot_id
WHERE e.customer_id = $1
ORDER BY e.id DESC
LIMIT $2;

-- name: InsertPointsEvents
-- Records events about points and tiers ($1 customers, $2 types, $3 properties, $4 times, $5 keys),
-- once per key, with the customer's facts as their snapshot; returns each event written with its
-- customer and key (the caller maps them back: a join here would be planned on a guess).
INSERT INTO events (customer_id, type, properties, occurred_at, received_at, idempotency_key, facts)
SELECT v.customer_id, v.type, v.properties, v.occurred_at, $6, v.idempotency_key, to_jsonb(c)
FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[], $5::text[])
     WITH ORDINALITY AS v(customer_id, type, properties, occurred_at, idempotency_key, n)
JOIN customers c ON c.id = v.customer_id
ORDER BY v.n
ON CONFLICT (customer_id, idempotency_key) DO NOTHING
RETURNING customer_id, id, idempotency_key;

-- name: RemindPoints
-- Claims up to $3 available lots with something left that expire after $1 and at or before $2
-- and were not reminded of, marking them reminded at $1; returns one row per customer: its lots
-- (ids), what is left of them and their earliest expiry. Lots a concurrent spend holds are
-- skipped and reminded of in the next batch.
WITH due AS (
    SELECT customer_id, id FROM points_lots
    WHERE expires_at > $1 AND expires_at <= $2 AND remaining > 0 AND expired_at IS NULL
      AND expires_at IS NOT NULL AND reminded_at IS NULL AND available_at <= $1
    ORDER BY expires_at, customer_id, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), upd AS (
    UPDATE points_lots l SET reminded_at = $1
    FROM due
    WHERE l.customer_id = due.customer_id AND l.id = due.id
    RETURNING l.customer_id, l.id, l.remaining, l.expires_at
)
SELECT customer_id, array_agg(id ORDER BY id), sum(remaining)::bigint, min(expires_at)
FROM upd
GROUP BY customer_id
ORDER BY customer_id;

-- name: GetPointsCoupon
-- Reads the coupon a redemption turned points into (issued under rule $2, "points:op:<id>").
SELECT id, code, kind, value FROM coupons WHERE customer_id = $1 AND rule = $2 ORDER BY id LIMIT 1;
