-- name: InsertFiring
-- Records that a rule fired for a customer and occurrence; returns no row if it already had, or
-- if it fired for the customer within the cooldown $7 (milliseconds; 0 = none) before $6. The
-- caller holds the customer's row lock, so the look-back cannot race another firing.
INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, event_id, fired_at)
SELECT $1, $2, $3, $4, $5, $6
WHERE $7::bigint = 0 OR NOT EXISTS (
    SELECT 1 FROM rule_firings
    WHERE customer_id = $1 AND rule = $2
      AND fired_at > $6::timestamptz - $7::bigint * interval '1 millisecond')
ON CONFLICT (customer_id, rule, occurrence) DO NOTHING
RETURNING id;

-- name: FiringExists
-- Says whether a rule already fired for a customer and occurrence (dry runs).
SELECT EXISTS (SELECT 1 FROM rule_firings WHERE customer_id = $1 AND rule = $2 AND occurrence = $3);
