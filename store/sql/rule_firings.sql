-- name: InsertFiring
-- Records that a rule fired for a customer and occurrence; returns no row if it already had.
INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, event_id, fired_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (customer_id, rule, occurrence) DO NOTHING
RETURNING id;

-- name: FiringExists
-- Says whether a rule already fired for a customer and occurrence (dry runs).
SELECT EXISTS (SELECT 1 FROM rule_firings WHERE customer_id = $1 AND rule = $2 AND occurrence = $3);
