-- name: InsertFiring
-- Records that a rule fired for a customer and occurrence; returns no row if it already had, or
-- if it fired for the customer within the cooldown $7 (milliseconds; 0 = none) before $6. The
-- caller holds the customer's row lock, so the look-back cannot race another firing.
INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, event_id, fired_at)
SELECT $1, $2, $3, $4, $5, $6
WHERE $7::bigint = 0 OR NOT EXISTS (
    SELECT 1 FROM rule_firings
    WHERE customer_id = $1 AND rule = $2
      AND fired_at > $6::timestamptz - $7::bigint * interval '1 millisecond')
ON CONFLICT (customer_id, rule, occurrence) DO NOTHING
RETURNING id;

-- name: FiringExists
-- Says whether a rule already fired for a customer and occurrence (dry runs).
SELECT EXISTS (SELECT 1 FROM rule_firings WHERE customer_id = $1 AND rule = $2 AND occurrence = $3);

-- name: FireRule
-- Records one rule firing with everything it does, in one statement: the firing (unique per
-- customer, rule and occurrence, and outside the cooldown: otherwise nothing is written and no
-- row returned),
-- the move to stage $7 ('' for none) and its transition, coupons ($8 codes, $9 kinds, $10 values,
-- $11 expiries; a taken code is skipped, not an error) with the customer's coupon_expires_at,
-- and queued deliveries ($12 channels, $13 actions). Returns the firing id, the stage left
-- ('' when not moved), the ids and codes of the coupons issued, and the delivery ids in order.
WITH f AS (
    INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, event_id, fired_at)
    SELECT $1, $2, $3, $4, $5, $6
    -- A cooldown ($14 ms, 0 = none) also looks back across window boundaries.
    WHERE $14::bigint = 0 OR NOT EXISTS (
        SELECT 1 FROM rule_firings
        WHERE customer_id = $1 AND rule = $2
          AND fired_at > $6::timestamptz - $14::bigint * interval '1 millisecond')
    ON CONFLICT (customer_id, rule, occurrence) DO NOTHING
    RETURNING id
), old AS (
    SELECT c.id, c.stage FROM customers c
    WHERE c.id = $1 AND EXISTS (SELECT 1 FROM f)
    FOR UPDATE
), cp AS (
    INSERT INTO coupons (code, customer_id, rule, firing_id, kind, value, created_at, expires_at)
    SELECT v.code, $1, $2, f.id, v.kind, v.value, $6, v.expires_at
    FROM f, unnest($8::text[], $9::text[], $10::float8[], $11::timestamptz[]) WITH ORDINALITY AS v(code, kind, value, expires_at, n)
    ORDER BY v.n
    ON CONFLICT (code) DO NOTHING
    RETURNING id, code, expires_at
), up AS (
    UPDATE customers AS c SET
        stage             = CASE WHEN old.stage IS DISTINCT FROM $7 AND $7 <> '' THEN $7 ELSE c.stage END,
        stage_entered_at  = CASE WHEN old.stage IS DISTINCT FROM $7 AND $7 <> '' THEN $6 ELSE c.stage_entered_at END,
        coupon_expires_at = LEAST(c.coupon_expires_at, (SELECT min(expires_at) FROM cp))
    FROM old
    WHERE c.id = old.id
      AND ((old.stage IS DISTINCT FROM $7 AND $7 <> '') OR EXISTS (SELECT 1 FROM cp WHERE expires_at IS NOT NULL))
    RETURNING old.stage AS from_stage, old.stage IS DISTINCT FROM $7 AND $7 <> '' AS moved
), tr AS (
    INSERT INTO stage_transitions (customer_id, from_stage, to_stage, rule, rule_set_version, firing_id, occurred_at)
    SELECT $1, up.from_stage, $7, $2, $4, f.id, $6 FROM up, f WHERE up.moved
), dl AS (
    INSERT INTO deliveries (customer_id, firing_id, rule, channel, action, created_at)
    SELECT $1, f.id, $2, v.channel, v.action, $6
    FROM f, unnest($12::text[], $13::jsonb[]) WITH ORDINALITY AS v(channel, action, n)
    ORDER BY v.n
    RETURNING id
)
SELECT f.id,
       COALESCE((SELECT from_stage FROM up WHERE moved), ''),
       (SELECT EXISTS (SELECT 1 FROM up WHERE moved)),
       ARRAY(SELECT id FROM cp ORDER BY id),
       ARRAY(SELECT code FROM cp ORDER BY id),
       ARRAY(SELECT id FROM dl ORDER BY id)
FROM f;
