-- +goose Up
-- Why a customer's tier changed: the evaluation of an event (its type and
-- id) or the daily tier sweep (a window rolled past).
ALTER TABLE tier_transitions ADD COLUMN IF NOT EXISTS reason text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE tier_transitions DROP COLUMN IF EXISTS reason;
