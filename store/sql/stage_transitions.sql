-- name: InsertTransition
-- Logs one stage change.
INSERT INTO stage_transitions (customer_id, from_stage, to_stage, rule, rule_set_version, firing_id, occurred_at)
VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7);
