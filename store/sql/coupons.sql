-- name: InsertCoupons
-- Issues coupons ($1 codes, $2 customers, $3 rules, $4 firings, $5 kinds, $6 values, $7 creation
-- and $8 expiry times) and lowers their customers' coupon_expires_at; a code taken already is
-- skipped (without aborting the transaction): returns the ids and codes stored, so that the caller
-- can draw again for the others.
WITH ins AS (
    INSERT INTO coupons (code, customer_id, rule, firing_id, kind, value, created_at, expires_at)
    SELECT upper(v.code), v.customer_id, v.rule, v.firing_id, v.kind, v.value, v.created_at, v.expires_at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::float8[], $7::timestamptz[], $8::timestamptz[])
         AS v(code, customer_id, rule, firing_id, kind, value, created_at, expires_at)
    ON CONFLICT (code) DO NOTHING
    RETURNING id, code, customer_id, expires_at
), upd AS (
    UPDATE customers AS c SET coupon_expires_at = LEAST(c.coupon_expires_at, e.expires_at)
    FROM (SELECT customer_id, min(expires_at) AS expires_at FROM ins
          WHERE expires_at IS NOT NULL GROUP BY customer_id) AS e
    WHERE c.id = e.customer_id
)
SELECT id, code FROM ins;

-- name: GetCouponsByFiring
-- Reads the coupons a firing issued.
SELECT id, code, customer_id, rule, firing_id, kind, value::float8, created_at, expires_at, redeemed_at
FROM coupons
WHERE customer_id = $1 AND firing_id = $2
ORDER BY id;

-- name: RedeemCoupon
-- Marks a customer's coupon redeemed at $3 unless it was redeemed already. The code matches
-- whatever its case (codes are stored in upper case). Returns the
-- coupon's code and when it had been redeemed before (NULL: redeemed now), or no row when the
-- customer has no coupon with this code.
WITH c AS (
    SELECT id, code, redeemed_at FROM coupons
    WHERE customer_id = $1 AND code = upper($2)
    FOR UPDATE
), u AS (
    UPDATE coupons SET redeemed_at = $3
    FROM c WHERE coupons.customer_id = $1 AND coupons.id = c.id AND c.redeemed_at IS NULL
)
SELECT code, redeemed_at FROM c;

-- name: RefreshCouponExpiry
-- Recomputes customers' coupon_expires_at: the earliest expiry of their unredeemed coupons still
-- valid at $2.
UPDATE customers AS c SET coupon_expires_at = (
    SELECT min(k.expires_at) FROM coupons k
    WHERE k.customer_id = c.id AND k.redeemed_at IS NULL AND k.expires_at > $2)
WHERE c.id = ANY($1);

-- name: ExpireCoupons
-- Claims up to $2 unredeemed coupons that expired by $1 and have no coupon_expired event yet.
UPDATE coupons SET expired_at = $1
WHERE (customer_id, id) IN (
    SELECT customer_id, id FROM coupons
    WHERE expires_at <= $1 AND redeemed_at IS NULL AND expired_at IS NULL AND expires_at IS NOT NULL
    ORDER BY expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED)
RETURNING id, code, customer_id, rule, firing_id, kind, value::float8, created_at, expires_at;

-- name: InsertCouponExpiredEvents
-- Records one coupon_expired event per expired coupon (idempotent on the code), with the
-- customer's facts as its snapshot; returns the events written.
INSERT INTO events (customer_id, type, properties, occurred_at, received_at, idempotency_key, facts)
SELECT v.customer_id, 'coupon_expired',
       jsonb_build_object('code', v.code, 'rule', v.rule, 'kind', v.kind, 'value', v.value, 'expires_at', v.expires_at),
       v.expires_at, $7, 'coupon_expired:' || v.code, to_jsonb(c)
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::timestamptz[])
     AS v(customer_id, code, rule, kind, value, expires_at)
JOIN customers c ON c.id = v.customer_id
ORDER BY v.customer_id, v.expires_at
ON CONFLICT (customer_id, idempotency_key) DO NOTHING
RETURNING customer_id, id;

-- name: GetCustomerCoupons
-- Reads a customer's coupons, newest first.
SELECT id, code, customer_id, rule, firing_id, kind, value::float8, created_at, expires_at, redeemed_at
FROM coupons
WHERE customer_id = $1
ORDER BY id DESC;
