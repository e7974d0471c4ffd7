-- +goose Up
-- Loyalty tiers and points reminders. A customer's tier is derived from its
-- spend or points over the tier's window and kept as a column so sweeps read
-- it like the stage; every change is a row in tier_transitions. A lot's
-- reminded_at says its points_expiring event was recorded, so each lot is
-- reminded of once.
ALTER TABLE customers ADD COLUMN IF NOT EXISTS tier text NOT NULL DEFAULT '';

CREATE TABLE IF NOT EXISTS tier_transitions (
    id               bigint      GENERATED ALWAYS AS IDENTITY,
    customer_id      text        NOT NULL REFERENCES customers (id),
    from_tier        text        NOT NULL,
    to_tier          text        NOT NULL,
    rule_set_version text        NOT NULL DEFAULT '',
    occurred_at      timestamptz NOT NULL,
    PRIMARY KEY (customer_id, id)
);

ALTER TABLE points_lots ADD COLUMN IF NOT EXISTS reminded_at timestamptz;
-- The reminder sweep reads only lots not reminded of yet.
CREATE INDEX IF NOT EXISTS points_lots_remind_idx ON points_lots (expires_at, customer_id, id)
    WHERE remaining > 0 AND expired_at IS NULL AND expires_at IS NOT NULL AND reminded_at IS NULL;

-- +goose Down
DROP INDEX IF EXISTS points_lots_remind_idx;
ALTER TABLE points_lots DROP COLUMN IF EXISTS reminded_at;
DROP TABLE IF EXISTS tier_transitions;
ALTER TABLE customers DROP COLUMN IF EXISTS tier;
