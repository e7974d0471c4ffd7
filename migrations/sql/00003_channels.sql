-- +goose Up
-- claimed_at marks an email delivery that passed the frequency cap and is
-- being sent. Dispatch sets it in a short transaction under a per-customer
-- advisory lock and clears it when it records the outcome, so concurrent
-- dispatches for one customer count each other's in-flight sends against
-- the cap without holding a lock (or a connection) across the SMTP exchange.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS claimed_at timestamptz;
CREATE INDEX IF NOT EXISTS deliveries_claimed_idx ON deliveries (customer_id) WHERE claimed_at IS NOT NULL;

-- +goose Down
DROP INDEX IF EXISTS deliveries_claimed_idx;
ALTER TABLE deliveries DROP COLUMN IF EXISTS claimed_at;
