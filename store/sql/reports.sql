-- Lifecycle report queries (docs/metrics.md explains each figure). Every
-- query aggregates in Postgres and returns at most one row per period and
-- stage, rule or cohort month: their size never grows with the customers.
-- Periods are date_trunc($1, … AT TIME ZONE 'UTC') buckets: week (from Monday),
-- month or quarter, as UTC timestamps (date_trunc's own time zone argument
-- costs ten times more per row); ranges are [$2, $3).

-- name: ReportStageFlows
-- Stage changes per period before $3, from → to ('' for a new customer): how many, and how many
-- distinct customers made them. Changes before $2 fall in one NULL period (customers 0 there), so
-- that running sums of entries minus exits give the customers per stage at $2 and at the end of
-- every period. One pass in each customer's transitions order (stage_transitions_customer_to_from_idx
-- gives it up to from_stage, which an incremental sort adds): a customer counts for a change in a
-- period at its first such change in it.
SELECT period, from_stage, to_stage, count(*), count(*) FILTER (WHERE period IS NOT NULL AND period IS DISTINCT FROM prev)
FROM (
    SELECT CASE WHEN occurred_at >= $2 THEN date_trunc($1::text, occurred_at AT TIME ZONE 'UTC') END AS period,
           COALESCE(from_stage, '') AS from_stage, to_stage,
           CASE WHEN lag(occurred_at) OVER w >= $2 THEN date_trunc($1::text, lag(occurred_at) OVER w AT TIME ZONE 'UTC') END AS prev
    FROM stage_transitions
    WHERE occurred_at < $3
    WINDOW w AS (PARTITION BY customer_id, to_stage, from_stage ORDER BY occurred_at)
) t
GROUP BY 1, 2, 3
ORDER BY 1 NULLS FIRST, 2, 3;

-- name: ReportConversion
-- Per period and funnel step A → B ($4[i] → $5[i]): the customers who entered A in the period,
-- and how many of them entered B within $6 milliseconds after their first entry into A then.
-- No sort of the whole log: stage_transitions_customer_to_from_idx gives each customer's entries per
-- stage in time order (prev: the entry into the same stage before), an incremental sort puts
-- each customer's entries in time order, and a frame over the window after each entry lists
-- the stages entered in it.
WITH steps AS (
    SELECT * FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS s (a, b, n)
), t AS (
    SELECT customer_id, to_stage, occurred_at,
           max(occurred_at) OVER (PARTITION BY customer_id, to_stage ORDER BY occurred_at
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev
    FROM stage_transitions
    WHERE occurred_at >= $2 AND occurred_at < $3::timestamptz + $6::bigint * interval '1 millisecond'
), ahead AS (
    SELECT to_stage, occurred_at, prev,
           array_agg(to_stage) OVER (PARTITION BY customer_id ORDER BY occurred_at
                                     RANGE BETWEEN CURRENT ROW AND $6::bigint * interval '1 millisecond' FOLLOWING) AS stages
    FROM t
)
SELECT date_trunc($1::text, x.occurred_at AT TIME ZONE 'UTC'), s.a, s.b, count(*), count(*) FILTER (WHERE s.b = ANY(x.stages))
FROM ahead x JOIN steps s ON s.a = x.to_stage
WHERE x.occurred_at < $3
  AND (x.prev IS NULL OR date_trunc($1::text, x.prev AT TIME ZONE 'UTC') <> date_trunc($1::text, x.occurred_at AT TIME ZONE 'UTC'))
GROUP BY 1, s.n, 2, 3
ORDER BY 1, 2, 3;

-- name: ReportRepeat
-- Per period: customers with at least two orders (event types $4) in it, and with at least one.
-- One pass over each customer's orders in time order: an order is the customer's first in its
-- period when the order before it is in another period, the second when only the one before it
-- is in the same period.
SELECT period, count(*) FILTER (WHERE period = p1 AND period IS DISTINCT FROM p2), count(*) FILTER (WHERE period IS DISTINCT FROM p1)
FROM (
    SELECT date_trunc($1::text, occurred_at AT TIME ZONE 'UTC') AS period,
           date_trunc($1::text, lag(occurred_at) OVER w AT TIME ZONE 'UTC') AS p1,
           date_trunc($1::text, lag(occurred_at, 2) OVER w AT TIME ZONE 'UTC') AS p2
    FROM events
    WHERE type = ANY($4::text[]) AND occurred_at >= $2 AND occurred_at < $3
    WINDOW w AS (PARTITION BY customer_id COLLATE "C" ORDER BY occurred_at)
) o
GROUP BY 1
ORDER BY 1;

-- name: ReportInactiveChurn
-- For rule files without a churned stage. A customer goes inactive $3 milliseconds after an order
-- (types $2) not followed by another within that window. Per period: the customers who went
-- inactive in it (up to $4, now), and the customers active at its start (an order in the window
-- before it). $5 lists the period starts, $6 their ends.
WITH o AS (
    SELECT customer_id, occurred_at,
           lead(occurred_at) OVER (PARTITION BY customer_id ORDER BY occurred_at) AS next_at
    FROM events
    WHERE type = ANY($2::text[]) AND occurred_at < $1
), lapsed AS MATERIALIZED (
    SELECT occurred_at + $3::bigint * interval '1 millisecond' AS inactive_at
    FROM o
    WHERE next_at IS NULL OR next_at > occurred_at + $3::bigint * interval '1 millisecond'
), p AS (
    SELECT * FROM unnest($5::timestamptz[], $6::timestamptz[]) AS p (starts, ends)
)
SELECT p.starts,
       (SELECT count(*) FROM lapsed l
        WHERE l.inactive_at >= p.starts AND l.inactive_at < p.ends AND l.inactive_at <= $4),
       (SELECT count(DISTINCT e.customer_id) FROM events e
        WHERE e.type = ANY($2::text[]) AND e.occurred_at < p.starts
          AND e.occurred_at >= p.starts - $3::bigint * interval '1 millisecond')
FROM p
ORDER BY 1;

-- name: ReportTimeInStage
-- Per stage, for the customers who left it in [$1, $2): how many left, and the median time in
-- seconds since they entered it (their latest entry into it before the exit, in time and id
-- order). One sorted pass over each customer's entries into and exits from each stage.
SELECT stage, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM occurred_at - entered_at))
FROM (
    SELECT s.stage, s.exits, t.occurred_at,
           max(t.occurred_at) FILTER (WHERE NOT s.exits) OVER (
               PARTITION BY t.customer_id COLLATE "C", s.stage ORDER BY t.occurred_at, t.id, s.exits DESC
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS entered_at
    FROM stage_transitions t
    CROSS JOIN LATERAL (VALUES (t.to_stage, false), (t.from_stage, true)) AS s (stage, exits)
    WHERE t.occurred_at < $2 AND s.stage IS NOT NULL
) x
WHERE exits AND occurred_at >= $1 AND entered_at IS NOT NULL
GROUP BY 1
ORDER BY 1;

-- name: ReportCohortSizes
-- Customers per month of their first order, for first orders in [$1, $2).
SELECT date_trunc('month', first_order_at AT TIME ZONE 'UTC'), count(*)
FROM customers
WHERE first_order_at >= $1 AND first_order_at < $2
GROUP BY 1
ORDER BY 1;

-- name: ReportCohortCells
-- Per first-order month (first orders in [$1, $2)) and k ≥ 1: the customers of the cohort with an
-- order (types $3) in the k-th calendar month after it, up to $4. Each customer's orders in time
-- order: one counts when the order before it is in another month.
SELECT cohort, k, count(*)
FROM (
    SELECT date_trunc('month', c.first_order_at AT TIME ZONE 'UTC') AS cohort,
           ((date_part('year', e.occurred_at AT TIME ZONE 'UTC') - date_part('year', c.first_order_at AT TIME ZONE 'UTC')) * 12
            + date_part('month', e.occurred_at AT TIME ZONE 'UTC') - date_part('month', c.first_order_at AT TIME ZONE 'UTC'))::int AS k,
           date_trunc('month', e.occurred_at AT TIME ZONE 'UTC') AS month,
           date_trunc('month', lag(e.occurred_at) OVER (PARTITION BY e.customer_id COLLATE "C" ORDER BY e.occurred_at) AT TIME ZONE 'UTC') AS prev
    FROM customers c
    JOIN events e ON e.customer_id = c.id
    WHERE c.first_order_at >= $1 AND c.first_order_at < $2
      AND e.type = ANY($3::text[]) AND e.occurred_at < $4
      AND e.occurred_at >= (date_trunc('month', c.first_order_at AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
) x
WHERE prev IS DISTINCT FROM month
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: ReportScores
-- Per period and survey ($4[i]: the event type of its answers), the answers whose
-- properties.score is a number from $5[i] to $6[i]: how many scored at least $7[i] (promoters,
-- satisfied), at most $8[i] (detractors), and in all. One pass over the answers of every survey.
WITH k AS (
    SELECT * FROM unnest($4::text[], $5::numeric[], $6::numeric[], $7::numeric[], $8::numeric[]) AS k (type, lo, hi, high, low)
)
SELECT date_trunc($1::text, a.occurred_at AT TIME ZONE 'UTC'), k.type,
       count(*) FILTER (WHERE a.score >= k.high), count(*) FILTER (WHERE a.score <= k.low), count(*)
FROM (
    SELECT type, occurred_at, (properties->>'score')::numeric AS score
    FROM events
    WHERE type = ANY($4::text[]) AND occurred_at >= $2 AND occurred_at < $3 AND jsonb_typeof(properties->'score') = 'number'
) a
JOIN k ON k.type = a.type
WHERE a.score BETWEEN k.lo AND k.hi
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: ReportRuleFirings
-- Firings per rule in [$1, $2).
SELECT rule, count(*) FROM rule_firings WHERE fired_at >= $1 AND fired_at < $2 GROUP BY 1 ORDER BY 1;

-- name: ReportRuleDeliveries
-- Deliveries per rule, channel and status, created in [$1, $2).
SELECT rule, channel, status, count(*)
FROM deliveries
WHERE created_at >= $1 AND created_at < $2
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- name: ReportRuleCoupons
-- Coupons per rule issued in [$1, $2): issued, redeemed, and expired unredeemed by $3 (now).
SELECT rule, count(*), count(*) FILTER (WHERE redeemed_at IS NOT NULL),
       count(*) FILTER (WHERE redeemed_at IS NULL AND (expired_at IS NOT NULL OR expires_at <= $3))
FROM coupons
WHERE created_at >= $1 AND created_at < $2
GROUP BY 1
ORDER BY 1;

-- name: ReportRuleRevenue
-- Orders (types $3) in [$1, $2) attributed to each rule that fired for the customer in the $4
-- milliseconds before the order (each such rule gets the order once), with their total. A
-- firing's span runs from it to the window's end or the rule's next firing for the customer,
-- whichever comes first: an order falls in at most one span per rule (that of the rule's latest
-- firing before it), so one hash join of orders and spans counts each (order, rule) once.
WITH spans AS (
    SELECT customer_id, rule, fired_at AS starts,
           least(lead(fired_at) OVER (PARTITION BY customer_id, rule ORDER BY fired_at),
                 fired_at + $4::bigint * interval '1 millisecond') AS ends
    FROM rule_firings
    WHERE fired_at < $2 AND fired_at >= $1::timestamptz - $4::bigint * interval '1 millisecond'
)
SELECT s.rule, count(*), COALESCE(sum(CASE WHEN jsonb_typeof(e.properties->'total') = 'number'
                                         THEN (e.properties->>'total')::numeric END), 0)::float8
FROM events e
JOIN spans s ON s.customer_id = e.customer_id AND e.occurred_at > s.starts AND e.occurred_at <= s.ends
WHERE e.type = ANY($3::text[]) AND e.occurred_at >= $1 AND e.occurred_at < $2
GROUP BY 1
ORDER BY 1;

-- name: ReportRuleHoldout
-- For each rule with held-out firings in [$1, $2): per group (held out or treated) the customers
-- it fired for in the range and how many of them placed an order (types $3) within $4
-- milliseconds after their first firing in the range.
WITH fired AS (
    SELECT rule, customer_id, bool_or(holdout) AS holdout, min(fired_at) AS at
    FROM rule_firings
    WHERE fired_at >= $1 AND fired_at < $2
      AND rule IN (SELECT DISTINCT rule FROM rule_firings WHERE holdout AND fired_at >= $1 AND fired_at < $2)
    GROUP BY rule, customer_id
)
SELECT f.rule, f.holdout, count(*),
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM events e
           WHERE e.customer_id = f.customer_id AND e.type = ANY($3::text[])
             AND e.occurred_at > f.at AND e.occurred_at <= f.at + $4::bigint * interval '1 millisecond'))
FROM fired f
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: ReportPoints
-- Loyalty points per period over [$2, $3), from the ledger's entries: granted (grant entries),
-- spent (redemptions, reversals of refunded orders, negative adjustments and their debts, as
-- positive points), expired (expiry entries) and the net change; entries before $2 fall in one
-- NULL bucket, so the running sum of the net change is the liability (points outstanding) at $2
-- and at the end of every period.
SELECT CASE WHEN created_at < $2 THEN NULL ELSE date_trunc($1::text, created_at AT TIME ZONE 'UTC') END AS period,
       COALESCE(sum(amount) FILTER (WHERE kind = 'grant'), 0)::bigint,
       COALESCE(-sum(amount) FILTER (WHERE kind IN ('spend', 'reverse', 'adjust', 'debt')), 0)::bigint,
       COALESCE(-sum(amount) FILTER (WHERE kind = 'expire'), 0)::bigint,
       sum(amount)::bigint
FROM points_entries
WHERE created_at < $3
GROUP BY 1
ORDER BY 1 NULLS FIRST;

-- name: ReportEventsCount
-- Counts every event: the benchmark's baseline scan.
SELECT count(*) FROM events;

-- name: ReportSettings
-- Tunes the report's transaction: its queries are few, large aggregates that JIT compilation
-- slows down more than it speeds up, and that sort and hash less on disk with more work_mem.
SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true);
