-- name: GetEventIDByKey
-- Finds the event an idempotency key was first used for, and the hash of its payload.
SELECT id, payload_hash FROM events WHERE customer_id = $1 AND idempotency_key = $2;

-- name: GetEvent
-- Reads one event.
SELECT id, customer_id, type, properties, occurred_at, received_at, COALESCE(idempotency_key, '')
FROM events
WHERE customer_id = $1 AND id = $2;

-- name: ClaimPendingEvents
-- Marks a customer's events not yet evaluated, up to and including one id, as evaluated at $3
-- and returns them in order (run after LockCustomerStage in the same transaction: a rollback
-- leaves them pending).
WITH e AS (
    UPDATE events SET evaluated_at = $3
    WHERE customer_id = $1 AND id <= $2 AND evaluated_at IS NULL
    RETURNING id, type, properties, occurred_at, facts
)
SELECT id, type, properties, occurred_at, facts FROM e ORDER BY id;

-- name: CustomerOfEventKey
-- Finds the customer of the first event stored under an idempotency key, whoever the customer.
SELECT customer_id FROM events WHERE idempotency_key = $1 ORDER BY id LIMIT 1;

-- name: IngestEventSet
-- Stores a run of events and folds each into its customer's facts (contact details, activity,
-- order totals), keeping them on the event as the snapshot its rules see, in one statement. It is
-- the one statement that stores events: a run of several events whose customers each have exactly
-- one event in the call (so that each event's fold is the customer's stored facts plus that one
-- event), or a run of one (an event of a customer with several in the call: each statement sees
-- what the customer's earlier ones left). The events come as parallel arrays in lock order (@ord
-- is each one's position in the run; event ids are assigned in that order). Run after
-- LockCustomer(s) in the same transaction: the row lock makes the duplicate check exact.
-- An event whose idempotency key was seen before for the customer writes nothing and answers with
-- the first event's id as dup_id, unless the payload hashes (@payload_hash, the hash of the
-- payload as sent, kept with the key) differ: that is a conflict, returned as such or, with
-- @abort_on_conflict, raised by ciclo_idempotency_conflict (SQLSTATE CI409, the first event's id
-- as detail), which aborts the transaction (a caller storing a run of several then stores the
-- call again in runs of one, which says which event conflicts). An event
-- insert that meets a key anyway (impossible under the row lock) fails the statement rather than
-- counting facts twice.
-- An order_cancelled or order_refunded event corrects the facts of the order its
-- properties.order_id names (the customer's first event of an order type in @order_types with that
-- order_id): a refund subtracts properties.amount (currency units) up to what is left of the
-- order's total; a cancellation subtracts what is left and uncounts the order; after a
-- cancellation nothing more is subtracted. An unknown order changes no fact.
-- Unless @job_kind is '', each new event's evaluate job goes into River's river_job (in the search
-- path) in the same statement, as River's InsertManyTx would write it (args customer_id and
-- event_id, @job_queue, @job_max_attempts, @job_priority, available now).
-- Returns one row per event, in no particular order: its customer_id (one event each),
-- event_id (NULL for a duplicate), dup_id and whether the duplicate is a conflict.
-- No step joins two sets of the run's rows: a prepared statement's generic plan estimates ten
-- rows for an unnest of parameters, and a nested loop over two 1,000-row CTE scans took 340 ms.
-- Each row carries what later steps need (the duplicate probe and the order correction are
-- per-row LATERAL index probes; the UPDATE returns the event's columns for the INSERT).
WITH input AS (
    SELECT u.ord, u.customer_id, u.type, u.properties::jsonb AS properties, u.occurred_at, u.received_at,
           NULLIF(u.idempotency_key, '') AS idempotency_key, u.email, u.name, u.timezone, u.is_order,
           u.order_total_cents, u.attributes::jsonb AS attributes, u.payload_hash
    FROM unnest(@ord::int[], @customer_id::text[], @type::text[], @properties::text[], @occurred_at::timestamptz[],
                @received_at::timestamptz[], @idempotency_key::text[], @email::text[], @name::text[], @timezone::text[],
                @is_order::boolean[], @order_total_cents::bigint[], @attributes::text[], @payload_hash::bytea[])
         AS u(ord, customer_id, type, properties, occurred_at, received_at, idempotency_key, email, name, timezone,
              is_order, order_total_cents, attributes, payload_hash)
), probed AS (
    -- Each event with the event its key was first used for, if any.
    SELECT i.*, d.id AS dup_id, d.payload_hash <> i.payload_hash AS conflict
    FROM input i LEFT JOIN LATERAL (
        SELECT id, payload_hash FROM events x
        WHERE x.customer_id = i.customer_id AND x.idempotency_key = i.idempotency_key LIMIT 1
    ) d ON true
), fresh AS (
    -- The new events with their order correction (placed, corr) for each, as an array
    -- [cents, orders]: a subquery in a CASE runs for correction events only (a LATERAL join ran
    -- for every event: 6 µs each).
    SELECT i.*, CASE WHEN i.type IN ('order_cancelled', 'order_refunded') AND i.properties->>'order_id' IS NOT NULL THEN (
        SELECT ARRAY[
            CASE
                WHEN placed.cancelled THEN 0
                WHEN i.type = 'order_cancelled' THEN placed.cents - placed.refunded
                WHEN jsonb_typeof(i.properties->'amount') = 'number' THEN
                    LEAST(placed.cents - placed.refunded, GREATEST(round((i.properties->>'amount')::numeric * 100)::bigint, 0))
                ELSE 0
            END,
            CASE WHEN i.type = 'order_cancelled' AND NOT placed.cancelled THEN 1 ELSE 0 END]
        FROM (
            SELECT round((p.properties->>'total')::numeric * 100)::bigint AS cents,
                EXISTS (SELECT 1 FROM events x WHERE x.customer_id = i.customer_id AND x.type = 'order_cancelled'
                        AND x.properties->>'order_id' = i.properties->>'order_id') AS cancelled,
                LEAST(round((p.properties->>'total')::numeric * 100)::bigint, COALESCE((
                    SELECT sum(round((x.properties->>'amount')::numeric * 100))::bigint FROM events x
                    WHERE x.customer_id = i.customer_id AND x.type = 'order_refunded' AND x.properties->>'order_id' = i.properties->>'order_id'
                ), 0)) AS refunded
            FROM events p
            WHERE p.customer_id = i.customer_id AND p.type = ANY(@order_types::text[])
              AND p.properties->>'order_id' = i.properties->>'order_id'
              AND jsonb_typeof(p.properties->'total') = 'number'
            ORDER BY p.id LIMIT 1
        ) placed
    ) END AS corr
    FROM probed i
    WHERE i.dup_id IS NULL
), c AS (
    UPDATE customers cu SET
        email             = COALESCE(NULLIF(f.email, ''), cu.email),
        name              = COALESCE(NULLIF(f.name, ''), cu.name),
        timezone          = COALESCE(NULLIF(f.timezone, ''), cu.timezone),
        last_seen_at      = GREATEST(cu.last_seen_at, f.occurred_at),
        first_order_at    = CASE WHEN f.is_order THEN LEAST(cu.first_order_at, f.occurred_at) ELSE cu.first_order_at END,
        last_order_at     = CASE WHEN f.is_order THEN GREATEST(cu.last_order_at, f.occurred_at) ELSE cu.last_order_at END,
        orders_count      = cu.orders_count + CASE WHEN f.is_order THEN 1 ELSE 0 END - COALESCE(f.corr[2], 0),
        total_spent_cents = cu.total_spent_cents + f.order_total_cents - COALESCE(f.corr[1], 0),
        attributes        = cu.attributes || f.attributes
    FROM fresh f
    WHERE cu.id = f.customer_id
    RETURNING f.ord, f.type, f.properties, f.occurred_at, f.received_at, f.idempotency_key, f.payload_hash,
        -- The snapshot: the customer's row as the UPDATE returns it, as a JSON object.
        jsonb_build_object('id', cu.id, 'email', cu.email, 'name', cu.name, 'timezone', cu.timezone, 'stage', cu.stage,
            'stage_entered_at', cu.stage_entered_at, 'created_at', cu.created_at, 'last_seen_at', cu.last_seen_at,
            'first_order_at', cu.first_order_at, 'last_order_at', cu.last_order_at, 'orders_count', cu.orders_count,
            'total_spent_cents', cu.total_spent_cents, 'attributes', cu.attributes, 'unsubscribed_at', cu.unsubscribed_at) AS facts,
        cu.id AS customer_id
), e AS (
    INSERT INTO events (customer_id, type, properties, occurred_at, received_at, idempotency_key, facts, payload_hash)
    SELECT customer_id, type, properties, occurred_at, received_at, idempotency_key, facts, payload_hash
    FROM c ORDER BY ord
    RETURNING id, customer_id
), j AS (
    INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, scheduled_at, created_at, tags, metadata)
    SELECT jsonb_build_object('customer_id', e.customer_id, 'event_id', e.id), @job_kind::text, @job_max_attempts::smallint,
           @job_priority::smallint, @job_queue::text, 'available', now(), now(), '{}', '{}'
    FROM e WHERE @job_kind::text <> ''
    ORDER BY e.id
)
SELECT customer_id, id AS event_id, NULL::bigint AS dup_id, false AS conflict FROM e
UNION ALL
SELECT customer_id, NULL,
    CASE WHEN conflict AND @abort_on_conflict::boolean THEN ciclo_idempotency_conflict(customer_id, idempotency_key, dup_id) ELSE dup_id END,
    COALESCE(conflict, false)
FROM probed WHERE dup_id IS NOT NULL;
