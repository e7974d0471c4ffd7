-- name: InsertCoupon
-- Issues a coupon; fails on a code collision so the caller can draw another code.
INSERT INTO coupons (code, customer_id, rule, firing_id, kind, value, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id;

-- name: GetCouponsByFiring
-- Reads the coupons a firing issued.
SELECT id, code, customer_id, rule, firing_id, kind, value::float8, created_at, expires_at, redeemed_at
FROM coupons
WHERE customer_id = $1 AND firing_id = $2
ORDER BY id;
