-- +goose Up
-- The lifecycle report reads each customer's stage entries per stage in time
-- order (conversion, and flows with the stage each entry came from): with
-- from_stage in the index both read it alone, without a sort of the log.
-- Same keys as stage_transitions_customer_to_idx, which it replaces.
CREATE INDEX IF NOT EXISTS stage_transitions_customer_to_from_idx ON stage_transitions (customer_id, to_stage, occurred_at) INCLUDE (from_stage);
DROP INDEX IF EXISTS stage_transitions_customer_to_idx;

-- +goose Down
CREATE INDEX IF NOT EXISTS stage_transitions_customer_to_idx ON stage_transitions (customer_id, to_stage, occurred_at);
DROP INDEX IF EXISTS stage_transitions_customer_to_from_idx;
