-- name: InsertDelivery
-- Queues one delivery of a firing's action.
INSERT INTO deliveries (customer_id, firing_id, rule, channel, action, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id;

-- name: GetDelivery
-- Reads one delivery with the firing's event, if any.
SELECT d.id, d.customer_id, d.firing_id, d.rule, d.channel, d.action, d.status, d.attempts,
       d.last_error, d.provider_id, d.response, d.created_at, f.event_id, f.rule_set_version
FROM deliveries d
JOIN rule_firings f ON f.customer_id = d.customer_id AND f.id = d.firing_id
WHERE d.customer_id = $1 AND d.id = $2;

-- name: FinishDelivery
-- Records a delivery's final or latest outcome.
UPDATE deliveries SET
    status        = $3,
    attempts      = attempts + $4,
    last_error    = $5,
    provider_id   = COALESCE(NULLIF($6, ''), provider_id),
    response_code = COALESCE($7, response_code),
    response      = COALESCE(NULLIF($9, ''), response),
    sent_at       = CASE WHEN $3 = 'sent' THEN $8 ELSE sent_at END
WHERE customer_id = $1 AND id = $2;

-- name: DeliveryOutcome
-- Reads a delivery's status and, once sent, when it was sent and when its event was received, for metrics.
SELECT d.status, d.sent_at, COALESCE(e.received_at, d.created_at)
FROM deliveries d
JOIN rule_firings f ON f.customer_id = d.customer_id AND f.id = d.firing_id
LEFT JOIN events e ON e.customer_id = d.customer_id AND e.id = f.event_id
WHERE d.customer_id = $1 AND d.id = $2;
