-- name: CustomerKeyHistogram
-- Estimates the customers table's size and reads its primary-key histogram, so that a sweep can
-- split the key space into shards of about equal size without reading the table.
SELECT GREATEST(c.reltuples, 0)::float8,
       COALESCE((SELECT s.histogram_bounds::text::text[] FROM pg_stats s
                 WHERE s.schemaname = n.nspname AND s.tablename = 'customers' AND s.attname = 'id'), '{}')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = 'customers'::regclass;

-- name: SweepCustomers
-- Reads one keyset page of customers for a sweep: ids after $1 (and up to $4 when bounded), at
-- most $2 rows, only the columns the rules read and only rows the rules' prefilters let through
-- (the placeholders are filled in by store/sweeps.go); $3 is the sweep's evaluation time.
SELECT id{columns}
FROM customers
WHERE id > $1 AND $3::timestamptz IS NOT NULL{upper}{filter}
ORDER BY id
LIMIT $2;

-- name: LockSweepCustomers
-- Locks the customers a sweep page fires for, in key order, and re-reads their facts so the
-- rules are judged on current data; columns as in SweepCustomers, $2 is the evaluation time.
SELECT id{columns}
FROM customers
WHERE id = ANY($1) AND $2::timestamptz IS NOT NULL
ORDER BY id
FOR UPDATE;
