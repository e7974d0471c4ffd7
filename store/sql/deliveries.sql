-- name: GetDelivery
-- Reads one delivery with the firing's event, if any.
SELECT d.id, d.customer_id, d.firing_id, d.rule, d.channel, d.action, d.status, d.attempts,
       d.last_error, d.provider_id, d.response, d.created_at, f.event_id, f.rule_set_version,
       COALESCE(d.message_key::text, ''), COALESCE(d.bounce_class, ''), COALESCE(d.enhanced_status, '')
FROM deliveries d
JOIN rule_firings f ON f.customer_id = d.customer_id AND f.id = d.firing_id
WHERE d.customer_id = $1 AND d.id = $2;

-- name: FinishDelivery
-- Records a delivery's final or latest outcome, and how its last SMTP
-- rejection was classified (@bounce_class, @enhanced_status; '' when it was not
-- rejected).
UPDATE deliveries SET
    status        = @status,
    attempts      = attempts + @attempts,
    last_error    = @last_error,
    bounce_class    = NULLIF(@bounce_class, ''),
    enhanced_status = NULLIF(@enhanced_status, ''),
    provider_id   = COALESCE(NULLIF(@provider_id, ''), provider_id),
    response_code = COALESCE(@response_code, response_code),
    response      = COALESCE(NULLIF(@response, ''), response),
    sent_at       = CASE WHEN @status = 'sent' THEN @at ELSE sent_at END,
    claimed_at    = NULL
WHERE customer_id = @customer_id AND id = @id;

-- name: AsyncCommit
-- Lets the rest of this (implicit) transaction commit without waiting for the WAL flush.
SELECT set_config('synchronous_commit', 'off', true);

-- name: LockCustomerSends
-- Serializes frequency-cap decisions for customers $1 until the transaction ends. Advisory
-- locks (namespace 'cicl') rather than the customer rows, so ingestion and evaluation, which
-- lock the rows, never wait on dispatch. Taken in key order, so two dispatches locking
-- overlapping sets of customers cannot deadlock.
SELECT count(pg_advisory_xact_lock(1667851116, k))
FROM (SELECT DISTINCT hashtext(c) AS k FROM unnest($1::text[]) AS c ORDER BY k) keys;

-- name: ClaimUnderCap
-- Claims queued email delivery $2 for sending if fewer than $5 of the customer's marketing
-- emails count against the cap: sent since $3, or claimed since $4 (in flight in another
-- dispatch). Run after LockCustomerSends in the same transaction. Returns the count and
-- whether the delivery was claimed.
WITH n AS (
    SELECT
        (SELECT count(*) FROM deliveries
         WHERE customer_id = $1 AND status = 'sent' AND sent_at > $3
           AND channel = 'email' AND NOT COALESCE((action->>'transactional')::boolean, false))
      + (SELECT count(*) FROM deliveries
         WHERE customer_id = $1 AND claimed_at IS NOT NULL AND claimed_at > $4 AND id <> $2
           AND status = 'queued' AND channel = 'email') AS sent
), claimed AS (
    UPDATE deliveries SET claimed_at = $6
    WHERE customer_id = $1 AND id = $2 AND status = 'queued' AND (SELECT sent FROM n) < $5
    RETURNING id
)
SELECT (SELECT sent FROM n), EXISTS (SELECT 1 FROM claimed);

-- name: ClaimUnderCapMany
-- ClaimUnderCap for several deliveries in one statement: row i of the arrays (customer $1,
-- delivery $2, window start $3, stale claims before $4, cap $5, claim time $6) claims its
-- delivery if fewer than $5 of the customer's marketing emails count against the cap, as
-- ClaimUnderCap does. Each customer may appear once: the counts are taken before any of
-- this statement's claims. Run after LockCustomerSends in the same transaction. Returns, in
-- the order of the arrays, the count and whether the delivery was claimed.
WITH r AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::timestamptz[], $5::int[], $6::timestamptz[])
        WITH ORDINALITY AS r(customer_id, id, since, stale_before, cap, at, ord)
), n AS MATERIALIZED (
    SELECT r.*,
        (SELECT count(*) FROM deliveries
         WHERE customer_id = r.customer_id AND status = 'sent' AND sent_at > r.since
           AND channel = 'email' AND NOT COALESCE((action->>'transactional')::boolean, false))
      + (SELECT count(*) FROM deliveries
         WHERE customer_id = r.customer_id AND claimed_at IS NOT NULL AND claimed_at > r.stale_before
           AND id <> r.id AND status = 'queued' AND channel = 'email') AS sent
    FROM r
), claimed AS (
    UPDATE deliveries d SET claimed_at = n.at
    FROM n
    WHERE d.customer_id = n.customer_id AND d.id = n.id AND d.status = 'queued' AND n.sent < n.cap
    RETURNING d.id
)
SELECT n.sent, EXISTS (SELECT 1 FROM claimed WHERE claimed.id = n.id) FROM n ORDER BY n.ord;

-- name: GetDispatch
-- Reads what dispatching a delivery needs in one round trip: the delivery and its firing,
-- the customer, the address's suppression reason, the firing's event and its coupon, and when
-- the event was received (the delivery created, for scheduled firings). GetDispatches
-- pipelines it for several deliveries. The hash an erasure left of the address is looked up
-- afterwards for the whole batch (ErasedSuppressions), from the lower-cased address returned
-- last: hashing in SQL cost more than the rest of the statement's lookups together.
SELECT d.id, d.customer_id, d.firing_id, d.rule, d.channel, d.action, d.status, d.attempts,
       d.last_error, d.provider_id, d.response, d.created_at, f.event_id, f.rule_set_version,
       COALESCE(d.message_key::text, ''), COALESCE(d.bounce_class, ''), COALESCE(d.enhanced_status, ''),
       c.id, c.email, c.name, c.timezone, c.stage, c.stage_entered_at, c.created_at, c.last_seen_at,
       c.first_order_at, c.last_order_at, c.orders_count, c.total_spent_cents, c.attributes,
       c.unsubscribed_at,
       COALESCE(s.reason, ''),
       e.type, e.properties, e.occurred_at,
       cp.code, cp.kind, cp.value::float8, cp.expires_at,
       COALESCE(e.received_at, d.created_at),
       -- The customer's points as the delivery was queued: balance, next expiry (templates'
       -- .Customer.Points).
       (SELECT COALESCE(sum(amount), 0)::bigint FROM points_entries WHERE customer_id = d.customer_id),
       (SELECT min(expires_at) FROM points_lots
        WHERE customer_id = d.customer_id AND remaining > 0 AND expired_at IS NULL
          AND available_at <= d.created_at AND expires_at > d.created_at),
       c.tier, lower(c.email)
FROM deliveries d
JOIN rule_firings f ON f.customer_id = d.customer_id AND f.id = d.firing_id
JOIN customers c ON c.id = d.customer_id
LEFT JOIN suppressions s ON c.email <> '' AND s.email = lower(c.email)
LEFT JOIN events e ON e.customer_id = d.customer_id AND e.id = f.event_id
-- The firing's own coupon, else the customer's active coupon that expires
-- first (what a "your bonus expires soon" reminder shows).
LEFT JOIN LATERAL (
    SELECT code, kind, value, expires_at FROM coupons
    WHERE customer_id = d.customer_id
      AND (firing_id = d.firing_id
           OR (redeemed_at IS NULL AND (expires_at IS NULL OR expires_at > $3)))
    ORDER BY firing_id = d.firing_id DESC, expires_at NULLS LAST, id
    LIMIT 1
) cp ON true
WHERE d.customer_id = $1 AND d.id = $2;

-- name: ErasedSuppressions
-- Reads which of the erased-address hashes $1 (see SuppressErasedAddress) are suppressed, and why.
SELECT email, reason FROM suppressions WHERE email = ANY($1::text[]);

-- name: DeliveryOutcome
-- Reads a delivery's status and, once sent, when it was sent and when its event was received, for metrics.
SELECT d.status, d.sent_at, COALESCE(e.received_at, d.created_at)
FROM deliveries d
JOIN rule_firings f ON f.customer_id = d.customer_id AND f.id = d.firing_id
LEFT JOIN events e ON e.customer_id = d.customer_id AND e.id = f.event_id
WHERE d.customer_id = $1 AND d.id = $2;

-- name: FirstDeliveryID
-- Finds a customer's first delivery.
SELECT id FROM deliveries WHERE customer_id = $1 ORDER BY id LIMIT 1;

-- name: CountMarketingSent
-- Counts the marketing emails sent to each of the customers $1 since $2 (frequency cap dry runs).
SELECT c.id, count(d.id)
FROM unnest($1::text[]) AS c(id)
LEFT JOIN deliveries d ON d.customer_id = c.id AND d.status = 'sent' AND d.sent_at > $2
     AND d.channel = 'email' AND NOT COALESCE((d.action->>'transactional')::boolean, false)
GROUP BY c.id;
