-- name: InsertRuleSkip
-- Records that a rule's condition failed at run time for a customer's event, so it was skipped.
INSERT INTO rule_skips (customer_id, rule, rule_set_version, event_id, error, skipped_at)
VALUES ($1, $2, $3, $4, $5, $6);
