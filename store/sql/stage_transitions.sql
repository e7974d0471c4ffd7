-- name: GetTransitions
-- Reads a customer's stage transitions, oldest first.
SELECT COALESCE(from_stage, ''), to_stage, COALESCE(rule, ''), rule_set_version, COALESCE(firing_id, 0), occurred_at
FROM stage_transitions
WHERE customer_id = $1
ORDER BY id;
