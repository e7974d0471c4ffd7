-- +goose Up
-- Fewer indexes to maintain per firing (issue #18). Each was checked against
-- the statements that read its table (EXPLAIN with the sweep's data):
-- - rule_firings_cooldown_idx (customer_id, rule, fired_at): the cooldown
--   look-back in FireRules reads the unique (customer_id, rule, occurrence)
--   key's prefix; this index was never scanned.
-- - coupons_customer_code_idx (customer_id, code): redemption looks the code
--   up in its unique index (coupons_code_key); dispatch's "the customer's
--   coupon" reads the primary key's customer_id prefix.
-- - coupons_firing_idx (customer_id, firing_id): a customer has few coupons;
--   the primary key's prefix finds them.
-- - deliveries_id_idx (id): every statement names a delivery by customer and
--   id, the primary key.
DROP INDEX IF EXISTS rule_firings_cooldown_idx;
DROP INDEX IF EXISTS coupons_customer_code_idx;
DROP INDEX IF EXISTS coupons_firing_idx;
DROP INDEX IF EXISTS deliveries_id_idx;

-- +goose Down
CREATE INDEX IF NOT EXISTS deliveries_id_idx ON deliveries (id);
CREATE INDEX IF NOT EXISTS coupons_firing_idx ON coupons (customer_id, firing_id);
CREATE INDEX IF NOT EXISTS coupons_customer_code_idx ON coupons (customer_id, code);
CREATE INDEX IF NOT EXISTS rule_firings_cooldown_idx ON rule_firings (customer_id, rule, fired_at);
