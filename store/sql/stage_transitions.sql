-- name: InsertTransition
-- Logs one stage change.
INSERT INTO stage_transitions (customer_id, from_stage, to_stage, rule, rule_set_version, firing_id, occurred_at)
VALUES ($1, $2, $3, NULLIF($4, ''), $5, $6, $7);

-- name: GetTransitions
-- Reads a customer's stage transitions, oldest first.
SELECT COALESCE(from_stage, ''), to_stage, COALESCE(rule, ''), rule_set_version, COALESCE(firing_id, 0), occurred_at
FROM stage_transitions
WHERE customer_id = $1
ORDER BY id;
