-- +goose Up
-- Webhooks find a Shopify refund's customer by the idempotency key of its
-- order's order_placed event (a refund payload names no customer).
CREATE INDEX IF NOT EXISTS events_idempotency_key_idx ON events (idempotency_key) WHERE idempotency_key IS NOT NULL;

-- +goose Down
DROP INDEX IF EXISTS events_idempotency_key_idx;
