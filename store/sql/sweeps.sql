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

-- name: ApplySweepEffects
-- Writes what a batch of sweep firings does, in one statement: each locked customer is updated
-- once ($3..$5: final stage, or NULL to keep it, and earliest new coupon expiry, lowering
-- coupon_expires_at), stage changes are logged ($6..$10), coupons are issued ($11..$17; a code
-- taken already is skipped, the caller draws again) and deliveries queued ($18..$22). $1 is the
-- rule-set version, $2 the time. Returns the coupons stored (is_coupon, id, code) and the
-- deliveries (is_coupon false, id, customer, firing, channel).
WITH cust AS (
    UPDATE customers AS c
    SET stage = COALESCE(v.stage, c.stage),
        stage_entered_at = CASE WHEN v.stage IS NULL THEN c.stage_entered_at ELSE $2 END,
        coupon_expires_at = LEAST(c.coupon_expires_at, v.coupon_expires_at)
    FROM unnest($3::text[], $4::text[], $5::timestamptz[]) AS v(id, stage, coupon_expires_at)
    WHERE c.id = v.id
), tr AS (
    INSERT INTO stage_transitions (customer_id, from_stage, to_stage, rule, rule_set_version, firing_id, occurred_at)
    SELECT v.customer_id, NULLIF(v.from_stage, ''), v.to_stage, v.rule, $1, v.firing_id, $2
    FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[])
         AS v(customer_id, from_stage, to_stage, rule, firing_id)
), cp AS (
    INSERT INTO coupons (code, customer_id, rule, firing_id, kind, value, created_at, expires_at)
    SELECT v.code, v.customer_id, v.rule, v.firing_id, v.kind, v.value, $2, v.expires_at
    FROM unnest($11::text[], $12::text[], $13::text[], $14::bigint[], $15::text[], $16::float8[], $17::timestamptz[])
         AS v(code, customer_id, rule, firing_id, kind, value, expires_at)
    ON CONFLICT (code) DO NOTHING
    RETURNING id, code
), dl AS (
    INSERT INTO deliveries (customer_id, firing_id, rule, channel, action, created_at)
    SELECT v.customer_id, v.firing_id, v.rule, v.channel, v.action, $2
    FROM unnest($18::text[], $19::bigint[], $20::text[], $21::text[], $22::jsonb[])
         AS v(customer_id, firing_id, rule, channel, action)
    RETURNING id, customer_id, firing_id, channel
)
SELECT true, id, code, 0::bigint, '' FROM cp
UNION ALL
SELECT false, id, customer_id, firing_id, channel FROM dl;

-- name: InsertSweepCoupons
-- Issues coupons whose first codes were taken, with new codes; returns the codes stored so that
-- the caller can draw again for the (rare) collisions. Their customers' coupon_expires_at was
-- set by ApplySweepEffects.
INSERT INTO coupons (code, customer_id, rule, firing_id, kind, value, created_at, expires_at)
SELECT v.code, v.customer_id, v.rule, v.firing_id, v.kind, v.value, $8, v.expires_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::float8[], $7::timestamptz[])
     AS v(code, customer_id, rule, firing_id, kind, value, expires_at)
ON CONFLICT (code) DO NOTHING
RETURNING id, code;
