-- +goose Up
-- Scheduled sweeps, cooldowns and coupon expiry (issue #4).

-- The earliest expiry of the customer's unredeemed coupons, kept up to date
-- when a coupon is issued, redeemed or expires, so that rules can read it
-- (customer.coupon_expires_at) and sweeps can push it into SQL. Readers treat
-- a time in the past as "no coupon": the expiry job clears it shortly after.
ALTER TABLE customers ADD COLUMN IF NOT EXISTS coupon_expires_at timestamptz;

-- When the coupon_expired event for a coupon was generated; NULL until then.
ALTER TABLE coupons ADD COLUMN IF NOT EXISTS expired_at timestamptz;

-- Finds coupons that expired and have no coupon_expired event yet.
CREATE INDEX IF NOT EXISTS coupons_expiring_idx ON coupons (expires_at)
    WHERE redeemed_at IS NULL AND expired_at IS NULL AND expires_at IS NOT NULL;

-- Redemption looks a coupon up by customer and code.
CREATE INDEX IF NOT EXISTS coupons_customer_code_idx ON coupons (customer_id, code);

-- Cooldown look-back: the customer's latest firing of a rule.
CREATE INDEX IF NOT EXISTS rule_firings_cooldown_idx ON rule_firings (customer_id, rule, fired_at);

-- +goose Down
DROP INDEX IF EXISTS rule_firings_cooldown_idx;
DROP INDEX IF EXISTS coupons_customer_code_idx;
DROP INDEX IF EXISTS coupons_expiring_idx;
ALTER TABLE coupons DROP COLUMN IF EXISTS expired_at;
ALTER TABLE customers DROP COLUMN IF EXISTS coupon_expires_at;
