-- name: CustomerKeyHistogram
-- Estimates the customers table's size and reads its primary-key histogram, so that a sweep can
-- split the key space into shards of about equal size without reading the table.
SELECT GREATEST(c.reltuples, 0)::float8,
       COALESCE((SELECT s.histogram_bounds::text::text[] FROM pg_stats s
                 WHERE s.schemaname = n.nspname AND s.tablename = 'customers' AND s.attname = 'id'), '{}')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = 'customers'::regclass;

-- name: SweepCustomers
-- Reads one keyset page of customers for a sweep: ids after $1 (and up to $4 when bounded), at
-- most $2 rows, only the columns the rules read and only rows the rules' prefilters let through
-- (the placeholders are filled in by store/sweeps.go); $3 is the sweep's evaluation time.
SELECT id{columns}
FROM customers
WHERE id > $1 AND $3::timestamptz IS NOT NULL{upper}{filter}
ORDER BY id
LIMIT $2;

-- name: LockSweepCustomers
-- Locks the customers a sweep page fires for, in key order, and re-reads their facts so the
-- rules are judged on current data; columns as in SweepCustomers, $2 is the evaluation time.
SELECT id{columns}
FROM customers
WHERE id = ANY($1) AND $2::timestamptz IS NOT NULL
ORDER BY id
FOR UPDATE;

-- name: InsertSweepFirings
-- Records a page of firings at once. A firing is skipped when its occurrence exists (unique
-- index: the guarantee) or when the rule fired for the customer less than its cooldown ago.
INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, fired_at)
SELECT v.customer_id, v.rule, v.occurrence, $5, $6
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS v(customer_id, rule, occurrence, cooldown_ms)
WHERE v.cooldown_ms = 0 OR NOT EXISTS (
    SELECT 1 FROM rule_firings f
    WHERE f.customer_id = v.customer_id AND f.rule = v.rule
      AND f.fired_at > $6::timestamptz - v.cooldown_ms * interval '1 millisecond')
ON CONFLICT (customer_id, rule, occurrence) DO NOTHING
RETURNING id, customer_id, rule;

-- name: SetCustomerStages
-- Moves many locked customers to new stages at once.
UPDATE customers AS c SET stage = v.stage, stage_entered_at = $3
FROM unnest($1::text[], $2::text[]) AS v(id, stage)
WHERE c.id = v.id;

-- name: InsertTransitions
-- Logs many stage changes at once.
INSERT INTO stage_transitions (customer_id, from_stage, to_stage, rule, rule_set_version, firing_id, occurred_at)
SELECT v.customer_id, NULLIF(v.from_stage, ''), v.to_stage, v.rule, $6, v.firing_id, $7
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
     AS v(customer_id, from_stage, to_stage, rule, firing_id);

-- name: InsertCoupons
-- Issues many coupons at once and lowers each customer's coupon_expires_at; returns the codes
-- stored, so that the caller can draw new codes for the (rare) collisions.
WITH ins AS (
    INSERT INTO coupons (code, customer_id, rule, firing_id, kind, value, created_at, expires_at)
    SELECT v.code, v.customer_id, v.rule, v.firing_id, v.kind, v.value, $8, v.expires_at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::float8[], $7::timestamptz[])
         AS v(code, customer_id, rule, firing_id, kind, value, expires_at)
    ON CONFLICT (code) DO NOTHING
    RETURNING id, code, customer_id, expires_at
), upd AS (
    UPDATE customers AS c SET coupon_expires_at = LEAST(c.coupon_expires_at, e.expires_at)
    FROM (SELECT customer_id, min(expires_at) AS expires_at FROM ins WHERE expires_at IS NOT NULL GROUP BY customer_id) AS e
    WHERE c.id = e.customer_id
)
SELECT id, code FROM ins;

-- name: InsertDeliveries
-- Queues many deliveries at once; returns each one's id, customer and channel for its dispatch job.
INSERT INTO deliveries (customer_id, firing_id, rule, channel, action, created_at)
SELECT v.customer_id, v.firing_id, v.rule, v.channel, v.action, $6
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::jsonb[])
     AS v(customer_id, firing_id, rule, channel, action)
RETURNING id, customer_id, firing_id, channel;
