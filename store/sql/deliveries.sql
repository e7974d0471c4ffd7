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
    sent_at       = CASE WHEN $3 = 'sent' THEN $8 ELSE sent_at END,
    claimed_at    = NULL
WHERE customer_id = $1 AND id = $2;

-- name: LockCustomerSends
-- Serializes frequency-cap decisions for one customer until the transaction ends. An advisory
-- lock (namespace 'cicl') rather than the customer row, so ingestion and evaluation, which
-- lock the row, never wait on dispatch.
SELECT pg_advisory_xact_lock(1667851116, hashtext($1));

-- name: CountCappedEmails
-- Counts a customer's marketing emails that count against the frequency cap: sent since $2,
-- or claimed for sending since $3 (in flight in another dispatch), other than delivery $4.
SELECT
    (SELECT count(*) FROM deliveries
     WHERE customer_id = $1 AND status = 'sent' AND sent_at > $2
       AND channel = 'email' AND NOT COALESCE((action->>'transactional')::boolean, false))
  + (SELECT count(*) FROM deliveries
     WHERE customer_id = $1 AND claimed_at IS NOT NULL AND claimed_at > $3 AND id <> $4
       AND status = 'queued' AND channel = 'email');

-- name: ClaimDelivery
-- Marks a queued delivery as being sent, so that it counts against the frequency cap.
UPDATE deliveries SET claimed_at = $3
WHERE customer_id = $1 AND id = $2 AND status = 'queued';
