-- name: CreateImportCustomersTable
-- Stages one batch of a customers file; dropped at commit.
CREATE TEMP TABLE import_customers (
    line       integer,
    id         text,
    email      text,
    name       text,
    timezone   text,
    created_at timestamptz,
    stage      text,
    attributes jsonb
) ON COMMIT DROP;

-- name: UpsertImportCustomers
-- Folds a staged customers batch in: new customers are created in their stage (or the initial
-- stage $1) as of their created_at, logged as a transition stamped $3; existing ones get the
-- contact details, attributes and stage the file gives, and a transition if the stage changed at $2.
-- Rows that would change nothing are left alone, so a re-run writes nothing. Returns how many were
-- created and updated.
WITH src AS (
    SELECT DISTINCT ON (id) id, email, name, timezone, created_at, stage, attributes
    FROM import_customers
    ORDER BY id, line DESC
), old AS (
    SELECT c.id, c.stage FROM customers c JOIN src USING (id)
    FOR UPDATE OF c
), upd AS (
    UPDATE customers c SET
        email            = COALESCE(NULLIF(s.email, ''), c.email),
        name             = COALESCE(NULLIF(s.name, ''), c.name),
        timezone         = COALESCE(NULLIF(s.timezone, ''), c.timezone),
        created_at       = LEAST(c.created_at, s.created_at),
        attributes       = c.attributes || s.attributes,
        stage            = COALESCE(NULLIF(s.stage, ''), c.stage),
        stage_entered_at = CASE WHEN NULLIF(s.stage, '') IS NOT NULL AND s.stage <> c.stage THEN $2
                                ELSE c.stage_entered_at END
    FROM src s JOIN old o USING (id)
    WHERE c.id = s.id AND (
           (NULLIF(s.email, '') IS NOT NULL AND s.email <> c.email)
        OR (NULLIF(s.name, '') IS NOT NULL AND s.name <> c.name)
        OR (NULLIF(s.timezone, '') IS NOT NULL AND s.timezone <> c.timezone)
        OR s.created_at < c.created_at
        OR NOT c.attributes @> s.attributes
        OR (NULLIF(s.stage, '') IS NOT NULL AND s.stage <> c.stage))
    RETURNING c.id, o.stage AS from_stage, c.stage AS to_stage
), ins AS (
    INSERT INTO customers (id, email, name, timezone, stage, stage_entered_at, created_at, attributes)
    SELECT s.id, s.email, s.name, s.timezone, COALESCE(NULLIF(s.stage, ''), $1),
           COALESCE(s.created_at, $2), COALESCE(s.created_at, $2), s.attributes
    FROM src s
    WHERE NOT EXISTS (SELECT 1 FROM old WHERE old.id = s.id)
    ON CONFLICT (id) DO NOTHING
    RETURNING id, stage, created_at
), tr AS (
    INSERT INTO stage_transitions (customer_id, from_stage, to_stage, rule_set_version, occurred_at)
    SELECT id, NULL, stage, $3, created_at FROM ins WHERE stage <> ''
    UNION ALL
    SELECT id, from_stage, to_stage, $3, $2 FROM upd WHERE from_stage IS DISTINCT FROM to_stage
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd);

-- name: CreateImportOrdersTable
-- Stages one batch of an orders file; dropped at commit.
CREATE TEMP TABLE import_orders (
    line        integer,
    customer_id text,
    order_id    text,
    type        text,
    properties  jsonb,
    total_cents bigint,
    counted     boolean,
    ordered_at  timestamptz
) ON COMMIT DROP;

-- name: CreateImportOrderCustomers
-- Creates the customers a staged orders batch names that do not exist yet, in the initial stage
-- $1 as of their first order, logging that entry as a transition stamped $2.
WITH first AS (
    SELECT customer_id, min(ordered_at) AS at FROM import_orders GROUP BY customer_id
), ins AS (
    INSERT INTO customers (id, stage, stage_entered_at, created_at)
    SELECT customer_id, $1, at, at FROM first
    ORDER BY customer_id
    ON CONFLICT (id) DO NOTHING
    RETURNING id, created_at
)
INSERT INTO stage_transitions (customer_id, to_stage, rule_set_version, occurred_at)
SELECT id, $1, $2, created_at FROM ins WHERE $1 <> '';

-- name: InsertImportOrders
-- Stores a staged orders batch as events keyed by order id (import:order:ID), already marked
-- evaluated at $1 so no event rule fires for history, and folds only the events this call
-- created into the customers' facts, so a re-run changes nothing. Returns how many were created.
WITH src AS (
    SELECT DISTINCT ON (customer_id, order_id) *
    FROM import_orders
    ORDER BY customer_id, order_id, line
), ev AS (
    INSERT INTO events (customer_id, type, properties, occurred_at, received_at, idempotency_key, evaluated_at)
    SELECT customer_id, type, properties, ordered_at, $1, 'import:order:' || order_id, $1
    FROM src
    ORDER BY customer_id, ordered_at
    ON CONFLICT (customer_id, idempotency_key) DO NOTHING
    RETURNING customer_id, idempotency_key
), f AS (
    SELECT s.customer_id,
           count(*) FILTER (WHERE s.counted)                      AS n,
           COALESCE(sum(s.total_cents) FILTER (WHERE s.counted), 0) AS spent,
           min(s.ordered_at) FILTER (WHERE s.counted)             AS first_at,
           max(s.ordered_at) FILTER (WHERE s.counted)             AS last_at,
           max(s.ordered_at)                                      AS seen,
           min(s.ordered_at)                                      AS earliest
    FROM ev JOIN src s ON s.customer_id = ev.customer_id AND ev.idempotency_key = 'import:order:' || s.order_id
    GROUP BY s.customer_id
), upd AS (
    UPDATE customers c SET
        orders_count      = c.orders_count + f.n,
        total_spent_cents = c.total_spent_cents + f.spent,
        first_order_at    = LEAST(c.first_order_at, f.first_at),
        last_order_at     = GREATEST(c.last_order_at, f.last_at),
        last_seen_at      = GREATEST(c.last_seen_at, f.seen),
        created_at        = LEAST(c.created_at, f.earliest)
    FROM f
    WHERE c.id = f.customer_id
)
SELECT count(*) FROM ev;
