-- name: LockCustomerForErasure
-- Locks the customer being erased and reads its address.
SELECT email FROM customers WHERE id = $1 FOR UPDATE;

-- name: SuppressErasedAddress
-- Keeps an erased address only as its hash, suppressed for good, and drops its plain suppression.
WITH h AS (
    SELECT 'sha256:' || encode(sha256(convert_to(lower($1), 'UTF8')), 'hex') AS email
), d AS (
    DELETE FROM suppressions WHERE email = lower($1)
)
INSERT INTO suppressions (email, reason, detail, created_at)
SELECT email, 'erased', '', $2 FROM h
ON CONFLICT (email) DO UPDATE SET reason = 'erased', detail = '';

-- name: CreateErasedCustomer
-- Creates the anonymous customer ($2) an erased one's history moves to: its stage and facts,
-- none of its contact details or attributes.
INSERT INTO customers (id, stage, stage_entered_at, created_at, last_seen_at, first_order_at, last_order_at,
                       orders_count, total_spent_cents, unsubscribed_at, erased_at)
SELECT $2, stage, stage_entered_at, created_at, last_seen_at, first_order_at, last_order_at,
       orders_count, total_spent_cents, COALESCE(unsubscribed_at, $3), $3
FROM customers WHERE id = $1;

-- name: MoveErasedEvents
-- Moves an erased customer's events to the anonymous id, without contact details in their
-- properties or facts.
UPDATE events SET
    customer_id = $2,
    properties  = properties - ARRAY['email', 'name', 'first_name', 'last_name', 'phone', 'address',
                                     'billing', 'shipping', 'customer'],
    facts       = CASE WHEN facts IS NULL THEN NULL
                       ELSE (facts - ARRAY['id', 'email', 'name', 'attributes']) || jsonb_build_object('id', $2::text) END
WHERE customer_id = $1;

-- name: MoveErasedDeliveries
-- Moves an erased customer's deliveries, dropping the servers' replies (they can quote the
-- address); returns the outbox files its emails were written to, for the caller to delete.
WITH old AS (
    SELECT id, response FROM deliveries WHERE customer_id = $1 AND channel = 'email' AND response LIKE '%.eml'
), upd AS (
    UPDATE deliveries SET customer_id = $2, response = '', last_error = '' WHERE customer_id = $1
)
SELECT response FROM old;

-- name: CustomerKeyedTables
-- Lists the tables whose customer_id references customers, so that an erasure moves the rows of
-- every one of them, including tables added after this query was written.
SELECT DISTINCT conrelid::regclass::text
FROM pg_constraint
WHERE contype = 'f' AND confrelid = 'customers'::regclass
ORDER BY 1;

-- name: MoveErasedReportRows
-- Moves the report rollups' rows keyed by the erased customer (no foreign key: the fold's log
-- and stage spans are derived data, written by triggers and the fold) to the anonymous id.
WITH spans AS (
    UPDATE report_stage_spans SET customer_id = $2 WHERE customer_id = $1
)
UPDATE report_dirty SET customer_id = $2 WHERE customer_id = $1;

-- name: DeleteErasedJobs
-- Drops River jobs whose args name the erased customer: finished ones are history, pending ones
-- would act for a person who asked to be forgotten. A job for several customers' deliveries
-- (args.deliveries[].customer_id, a sweep's dispatch batch) loses the erased customer's and is
-- dropped when none is left, so its id does not outlive the erasure in the queue either.
WITH batch AS (
    SELECT j.id, (SELECT COALESCE(jsonb_agg(d), '[]') FROM jsonb_array_elements(j.args->'deliveries') d
                  WHERE d->>'customer_id' IS DISTINCT FROM $1) AS deliveries
    FROM river_job j
    WHERE j.args @> jsonb_build_object('deliveries', jsonb_build_array(jsonb_build_object('customer_id', $1::text)))
), kept AS (
    UPDATE river_job j SET args = jsonb_set(j.args, '{deliveries}', b.deliveries)
    FROM batch b
    WHERE j.id = b.id AND b.deliveries <> '[]'
)
DELETE FROM river_job j
WHERE j.args @> jsonb_build_object('customer_id', $1::text)
   OR j.id IN (SELECT id FROM batch WHERE deliveries = '[]');

-- name: DeleteErasedCustomer
DELETE FROM customers WHERE id = $1;

-- name: LockErasureExclusive
-- Takes the erasure lock of customer $1 (see SendGuard), held until the erasure commits: sends
-- already past their re-check finish first, later ones wait for the commit and see it.
SELECT pg_advisory_xact_lock(1667851119, hashtext($1));

-- name: LockErasureShared
-- Takes a send's share of the erasure locks of customers $1 (see SendGuard), held until the sends
-- are done. Shares never wait for one another, so their order does not matter.
SELECT count(pg_advisory_xact_lock_shared(1667851119, hashtext(c))) FROM (SELECT DISTINCT unnest($1::text[]) AS c) x;

-- name: DeliveriesStillTheCustomers
-- Which of the deliveries (customer $1[i], id $2[i]) still belong to their customer, i.e. no erasure
-- moved them; run after LockErasureShared, as a statement of its own, so that its snapshot includes
-- any erasure that held a lock.
SELECT COALESCE(array_agg(d.id), '{}')
FROM deliveries d JOIN unnest($1::text[], $2::bigint[]) AS r(customer_id, id) ON d.customer_id = r.customer_id AND d.id = r.id;
