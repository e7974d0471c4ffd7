-- +goose Up
-- Ingest checks (issue 11).

-- The SHA-256 of an event's canonical payload as it was sent, kept for events
-- that carry an idempotency key: a retry with the same key must carry the
-- same payload, or it is refused instead of being taken for a duplicate.
-- NULL for events stored before this column existed (any retry of those is
-- taken as a duplicate, as before).
ALTER TABLE events ADD COLUMN IF NOT EXISTS payload_hash bytea;

-- Coupon codes are read aloud and typed, so they match whatever the case:
-- they are stored in upper case (as worker.NewCouponCode draws them) and
-- looked up in upper case, and the unique index on code is then unique
-- whatever the case. NOT VALID + VALIDATE keeps the table writable while
-- existing rows are checked.
UPDATE coupons SET code = upper(code) WHERE code <> upper(code);
ALTER TABLE coupons ADD CONSTRAINT coupons_code_upper CHECK (code = upper(code)) NOT VALID;
ALTER TABLE coupons VALIDATE CONSTRAINT coupons_code_upper;

-- +goose Down
ALTER TABLE coupons DROP CONSTRAINT IF EXISTS coupons_code_upper;
ALTER TABLE events DROP COLUMN IF EXISTS payload_hash;
