-- +goose Up
-- A firing for a customer in the rule's holdout group: recorded (so that
-- reports compare treated and held-out customers) but it did nothing.
ALTER TABLE rule_firings ADD COLUMN IF NOT EXISTS holdout boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE rule_firings DROP COLUMN IF EXISTS holdout;
