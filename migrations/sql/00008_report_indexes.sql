-- +goose Up
-- Indexes the lifecycle report reads (issue #12, docs/metrics.md).

-- Conversion ("did the customer reach stage B within the window after
-- entering A") and time in stage ("when did the customer enter the stage it
-- left") look up one customer's entries into one stage by time.
CREATE INDEX IF NOT EXISTS stage_transitions_customer_to_idx ON stage_transitions (customer_id, to_stage, occurred_at);

-- Orders, NPS and CSAT answers of a period: events of a few types by time.
CREATE INDEX IF NOT EXISTS events_type_occurred_idx ON events (type, occurred_at);

-- Attribution: the rules that fired for a customer in the window before an
-- order, without visiting the firings' rows.
CREATE INDEX IF NOT EXISTS rule_firings_customer_fired_idx ON rule_firings (customer_id, fired_at) INCLUDE (rule);

-- +goose Down
DROP INDEX IF EXISTS rule_firings_customer_fired_idx;
DROP INDEX IF EXISTS events_type_occurred_idx;
DROP INDEX IF EXISTS stage_transitions_customer_to_idx;
