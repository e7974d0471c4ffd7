-- Report rollups (migrations 00027, docs/metrics.md "Rollups"). The report
-- queries below read the rollups for the periods (or days) they cover and the
-- raw rows for the rest, in one statement: $covered lists the periods served
-- from a rollup, ($starts[i], $ends[i]) the ranges read raw. The raw part is
-- the query of reports.sql restricted to those ranges; a range never splits a
-- period, so "the previous row is in another period" reads the same. The fold
-- calls the same statements with no covered period, so a rollup holds exactly
-- what the raw query gives.

-- name: RollupState
SELECT conversion_window_ms, attribution_window_ms, order_types, score_types, version FROM report_rollup_state;

-- name: RollupDirtyDays
-- The days (per source table) with rows written since the last fold.
SELECT source, day::timestamp FROM report_dirty GROUP BY 1, 2 ORDER BY 1, 2;

-- name: ReportStageFlowsRollup
-- ReportStageFlows: $1 period kind; $2 covered periods; ($3, $4) raw period ranges; before-the-range
-- totals from the day rollups before $5 except the dirty days $6, plus the raw ranges ($7, $8).
WITH g AS (
    SELECT * FROM unnest($3::timestamptz[], $4::timestamptz[]) AS g (a, b)
), bg AS (
    SELECT * FROM unnest($7::timestamptz[], $8::timestamptz[]) AS g (a, b)
)
SELECT period, from_stage, to_stage, transitions, customers
FROM report_flow_periods
WHERE kind = $1 AND period IN (SELECT p AT TIME ZONE 'UTC' FROM unnest($2::timestamptz[]) AS p)
UNION ALL
SELECT period, from_stage, to_stage, count(*), count(*) FILTER (WHERE period IS DISTINCT FROM prev)
FROM (
    SELECT date_trunc($1::text, t.occurred_at AT TIME ZONE 'UTC') AS period,
           COALESCE(t.from_stage, '') AS from_stage, t.to_stage,
           date_trunc($1::text, lag(t.occurred_at) OVER w AT TIME ZONE 'UTC') AS prev
    FROM stage_transitions t JOIN g ON t.occurred_at >= g.a AND t.occurred_at < g.b
    WINDOW w AS (PARTITION BY t.customer_id, t.to_stage, t.from_stage ORDER BY t.occurred_at)
) x
GROUP BY 1, 2, 3
UNION ALL
SELECT NULL, from_stage, to_stage, sum(n)::bigint, 0
FROM (
    SELECT from_stage, to_stage, transitions AS n
    FROM report_flow_periods
    WHERE kind = 'day' AND period < $5::timestamptz AT TIME ZONE 'UTC'
      AND period NOT IN (SELECT d AT TIME ZONE 'UTC' FROM unnest($6::timestamptz[]) AS d)
    UNION ALL
    SELECT COALESCE(t.from_stage, ''), t.to_stage, 1
    FROM stage_transitions t JOIN bg ON t.occurred_at >= bg.a AND t.occurred_at < bg.b
) y
GROUP BY 2, 3
ORDER BY 1 NULLS FIRST, 2, 3;

-- name: ReportRepeatRollup
-- ReportRepeat: $1 kind, $2 covered periods, ($3, $4) raw ranges, $5 order types.
WITH g AS (
    SELECT * FROM unnest($3::timestamptz[], $4::timestamptz[]) AS g (a, b)
)
SELECT period, repeat, buyers
FROM report_repeat_periods
WHERE kind = $1 AND period IN (SELECT p AT TIME ZONE 'UTC' FROM unnest($2::timestamptz[]) AS p)
UNION ALL
SELECT period, count(*) FILTER (WHERE period = p1 AND period IS DISTINCT FROM p2), count(*) FILTER (WHERE period IS DISTINCT FROM p1)
FROM (
    SELECT date_trunc($1::text, e.occurred_at AT TIME ZONE 'UTC') AS period,
           date_trunc($1::text, lag(e.occurred_at) OVER w AT TIME ZONE 'UTC') AS p1,
           date_trunc($1::text, lag(e.occurred_at, 2) OVER w AT TIME ZONE 'UTC') AS p2
    FROM events e JOIN g ON e.occurred_at >= g.a AND e.occurred_at < g.b
    WHERE e.type = ANY($5::text[])
    WINDOW w AS (PARTITION BY e.customer_id COLLATE "C" ORDER BY e.occurred_at)
) o
GROUP BY 1
ORDER BY 1;

-- name: ReportConversionRollup
-- ReportConversion: $1 kind, $2 covered periods, ($3, $4) raw ranges, steps $5[i] → $6[i], window
-- $7 ms; ($8, $9) are the raw ranges each extended by the window, merged (entries there count as
-- conversions only).
WITH steps AS (
    SELECT * FROM unnest($5::text[], $6::text[]) WITH ORDINALITY AS s (a, b, n)
), roll AS (
    SELECT period, a, b, n
    FROM report_conversion_periods
    WHERE kind = $1 AND period IN (SELECT p AT TIME ZONE 'UTC' FROM unnest($2::timestamptz[]) AS p)
), x AS (
    SELECT date_trunc($1::text, occurred_at AT TIME ZONE 'UTC') AS period, to_stage, stages
    FROM (
        SELECT to_stage, occurred_at, prev,
               array_agg(to_stage) OVER (PARTITION BY customer_id ORDER BY occurred_at
                                         RANGE BETWEEN CURRENT ROW AND $7::bigint * interval '1 millisecond' FOLLOWING) AS stages
        FROM (
            SELECT t.customer_id, t.to_stage, t.occurred_at,
                   max(t.occurred_at) OVER (PARTITION BY t.customer_id, t.to_stage ORDER BY t.occurred_at
                                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev
            FROM stage_transitions t
            JOIN unnest($8::timestamptz[], $9::timestamptz[]) AS r (a, b) ON t.occurred_at >= r.a AND t.occurred_at < r.b
        ) t
    ) x
    WHERE EXISTS (SELECT 1 FROM unnest($3::timestamptz[], $4::timestamptz[]) AS g (a, b) WHERE x.occurred_at >= g.a AND x.occurred_at < g.b)
      AND (prev IS NULL OR date_trunc($1::text, prev AT TIME ZONE 'UTC') <> date_trunc($1::text, occurred_at AT TIME ZONE 'UTC'))
)
SELECT r.period, s.a, s.b, r.n, COALESCE(c.n, 0)
FROM roll r
JOIN steps s ON s.a = r.a AND r.b = ''
LEFT JOIN roll c ON c.period = r.period AND c.a = s.a AND c.b = s.b
UNION ALL
SELECT x.period, s.a, s.b, count(*), count(*) FILTER (WHERE s.b = ANY(x.stages))
FROM x JOIN steps s ON s.a = x.to_stage
GROUP BY x.period, s.n, 2, 3
ORDER BY 1, 2, 3;

-- name: FoldConversion
-- The conversion rollup of the periods in the ranges ($2, $3), window $4 ms, ($5, $6) the ranges
-- extended by the window: per period and stage a entered in it, b '' (how many entered a) and
-- every stage b entered in the window after (how many of them did).
WITH x AS (
    SELECT date_trunc($1::text, occurred_at AT TIME ZONE 'UTC') AS period, to_stage, stages
    FROM (
        SELECT to_stage, occurred_at, prev,
               array_agg(to_stage) OVER (PARTITION BY customer_id ORDER BY occurred_at
                                         RANGE BETWEEN CURRENT ROW AND $4::bigint * interval '1 millisecond' FOLLOWING) AS stages
        FROM (
            SELECT t.customer_id, t.to_stage, t.occurred_at,
                   max(t.occurred_at) OVER (PARTITION BY t.customer_id, t.to_stage ORDER BY t.occurred_at
                                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev
            FROM stage_transitions t
            JOIN unnest($5::timestamptz[], $6::timestamptz[]) AS r (a, b) ON t.occurred_at >= r.a AND t.occurred_at < r.b
        ) t
    ) x
    WHERE EXISTS (SELECT 1 FROM unnest($2::timestamptz[], $3::timestamptz[]) AS g (a, b) WHERE x.occurred_at >= g.a AND x.occurred_at < g.b)
      AND (prev IS NULL OR date_trunc($1::text, prev AT TIME ZONE 'UTC') <> date_trunc($1::text, occurred_at AT TIME ZONE 'UTC'))
)
SELECT x.period, x.to_stage, u.b, count(*)
FROM x
CROSS JOIN LATERAL (SELECT '' UNION SELECT unnest(x.stages)) AS u (b)
GROUP BY 1, 2, 3;

-- name: ReportRevenueDays
-- Attribution (ReportRuleRevenue) per UTC day of the order and rule, for orders (types $3) in the
-- ranges ($1, $2), window $4 ms; revenue stays numeric so that sums of days are exact.
WITH g AS (
    SELECT * FROM unnest($1::timestamptz[], $2::timestamptz[]) AS g (a, b)
), spans AS (
    SELECT customer_id, rule, fired_at AS starts,
           least(lead(fired_at) OVER (PARTITION BY customer_id, rule ORDER BY fired_at),
                 fired_at + $4::bigint * interval '1 millisecond') AS ends
    FROM rule_firings
    WHERE fired_at < (SELECT max(b) FROM g) AND fired_at >= (SELECT min(a) FROM g) - $4::bigint * interval '1 millisecond'
)
SELECT (e.occurred_at AT TIME ZONE 'UTC')::date AS day, s.rule, count(*) AS orders,
       COALESCE(sum(CASE WHEN jsonb_typeof(e.properties->'total') = 'number' THEN (e.properties->>'total')::numeric END), 0) AS revenue
FROM events e
JOIN g ON e.occurred_at >= g.a AND e.occurred_at < g.b
JOIN spans s ON s.customer_id = e.customer_id AND e.occurred_at > s.starts AND e.occurred_at <= s.ends
WHERE e.type = ANY($3::text[])
GROUP BY 1, 2;

-- name: ReportRuleRevenueRollup
-- ReportRuleRevenue: the revenue rollup's days $1, and ReportRevenueDays over the raw ranges
-- ($2, $3); orders types $4, window $5 ms.
WITH g AS (
    SELECT * FROM unnest($2::timestamptz[], $3::timestamptz[]) AS g (a, b)
), spans AS (
    SELECT customer_id, rule, fired_at AS starts,
           least(lead(fired_at) OVER (PARTITION BY customer_id, rule ORDER BY fired_at),
                 fired_at + $5::bigint * interval '1 millisecond') AS ends
    FROM rule_firings
    WHERE fired_at < (SELECT max(b) FROM g) AND fired_at >= (SELECT min(a) FROM g) - $5::bigint * interval '1 millisecond'
), r AS (
    SELECT rule, orders, revenue
    FROM report_revenue_days
    WHERE day IN (SELECT (d AT TIME ZONE 'UTC')::date FROM unnest($1::timestamptz[]) AS d)
    UNION ALL
    SELECT s.rule, 1, CASE WHEN jsonb_typeof(e.properties->'total') = 'number' THEN (e.properties->>'total')::numeric END
    FROM events e
    JOIN g ON e.occurred_at >= g.a AND e.occurred_at < g.b
    JOIN spans s ON s.customer_id = e.customer_id AND e.occurred_at > s.starts AND e.occurred_at <= s.ends
    WHERE e.type = ANY($4::text[])
)
SELECT rule, sum(orders)::bigint, COALESCE(sum(revenue), 0)::float8
FROM r
GROUP BY 1
ORDER BY 1;

-- name: ReportTimeInStageRollup
-- ReportTimeInStage: the spans rollup for the customers without rows written since the fold, the
-- raw spans of the others (a late entry changes the customer's later spans).
WITH d AS MATERIALIZED (
    SELECT DISTINCT customer_id FROM report_dirty WHERE source = 'stage_transitions'
), spans AS (
    SELECT stage, seconds
    FROM report_stage_spans sp
    WHERE left_at >= $1 AND left_at < $2 AND NOT EXISTS (SELECT 1 FROM d WHERE d.customer_id = sp.customer_id)
    UNION ALL
    SELECT stage, extract(epoch FROM occurred_at - entered_at)::float8
    FROM (
    SELECT t.customer_id, s.stage, s.exits, t.occurred_at,
               max(t.occurred_at) FILTER (WHERE NOT s.exits) OVER (
                   PARTITION BY t.customer_id COLLATE "C", s.stage ORDER BY t.occurred_at, t.id, s.exits DESC
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS entered_at
        FROM stage_transitions t
        CROSS JOIN LATERAL (VALUES (t.to_stage, false), (t.from_stage, true)) AS s (stage, exits)
        WHERE s.stage IS NOT NULL
          AND t.customer_id IN (SELECT customer_id FROM d) AND t.occurred_at < $2
    ) x
    WHERE exits AND occurred_at >= $1 AND entered_at IS NOT NULL
)
SELECT stage, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)
FROM spans
GROUP BY 1
ORDER BY 1;

-- name: FoldStageSpans
-- Refolds the spans of the customers with rows written since the last fold.
INSERT INTO report_stage_spans (customer_id, stage, left_at, seconds)
SELECT customer_id, stage, occurred_at, extract(epoch FROM occurred_at - entered_at)::float8
FROM (
    SELECT t.customer_id, s.stage, s.exits, t.occurred_at,
           max(t.occurred_at) FILTER (WHERE NOT s.exits) OVER (
               PARTITION BY t.customer_id COLLATE "C", s.stage ORDER BY t.occurred_at, t.id, s.exits DESC
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS entered_at
    FROM stage_transitions t
    CROSS JOIN LATERAL (VALUES (t.to_stage, false), (t.from_stage, true)) AS s (stage, exits)
    WHERE s.stage IS NOT NULL
      AND t.customer_id IN (SELECT customer_id FROM report_folding WHERE source = 'stage_transitions')
) x
WHERE exits AND entered_at IS NOT NULL;

-- name: FoldStageSpansAll
-- Folds the spans of every customer.
INSERT INTO report_stage_spans (customer_id, stage, left_at, seconds)
SELECT customer_id, stage, occurred_at, extract(epoch FROM occurred_at - entered_at)::float8
FROM (
    SELECT t.customer_id, s.stage, s.exits, t.occurred_at,
           max(t.occurred_at) FILTER (WHERE NOT s.exits) OVER (
               PARTITION BY t.customer_id COLLATE "C", s.stage ORDER BY t.occurred_at, t.id, s.exits DESC
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS entered_at
    FROM stage_transitions t
    CROSS JOIN LATERAL (VALUES (t.to_stage, false), (t.from_stage, true)) AS s (stage, exits)
    WHERE s.stage IS NOT NULL
) x
WHERE exits AND entered_at IS NOT NULL;

-- name: FoldDeleteSpans
DELETE FROM report_stage_spans
WHERE customer_id IN (SELECT customer_id FROM report_folding WHERE source = 'stage_transitions');

-- name: FoldBegin
-- Takes the rows written since the last fold: exactly those this transaction's snapshot sees
-- (rows committed later stay for the next fold).
CREATE TEMP TABLE report_folding ON COMMIT DROP AS
WITH d AS (DELETE FROM report_dirty RETURNING source, customer_id, day)
SELECT DISTINCT source, customer_id, day FROM d;

-- name: FoldLock
-- One fold at a time per schema (the rollups are the schema's).
SELECT pg_try_advisory_xact_lock(hashtext('ciclo.report_fold.' || current_schema())), current_setting('transaction_isolation');

-- name: FoldDays
SELECT source, day::timestamp FROM report_folding GROUP BY 1, 2 ORDER BY 1, 2;

-- name: FoldBounds
-- The first and last instant of the history the rollups derive from.
SELECT min(lo), max(hi)
FROM (
    SELECT min(occurred_at) AS lo, max(occurred_at) AS hi FROM stage_transitions
    UNION ALL SELECT min(occurred_at), max(occurred_at) FROM events
    UNION ALL SELECT min(fired_at), max(fired_at) FROM rule_firings
) b;

-- name: FoldDeleteFlows
DELETE FROM report_flow_periods WHERE kind = $1 AND period >= $2::timestamptz AT TIME ZONE 'UTC' AND period < $3::timestamptz AT TIME ZONE 'UTC';

-- name: FoldDeleteConversion
DELETE FROM report_conversion_periods WHERE kind = $1 AND period >= $2::timestamptz AT TIME ZONE 'UTC' AND period < $3::timestamptz AT TIME ZONE 'UTC';

-- name: FoldDeleteRepeat
DELETE FROM report_repeat_periods WHERE kind = $1 AND period >= $2::timestamptz AT TIME ZONE 'UTC' AND period < $3::timestamptz AT TIME ZONE 'UTC';

-- name: FoldDeleteRevenue
DELETE FROM report_revenue_days WHERE day >= ($1::timestamptz AT TIME ZONE 'UTC')::date AND day < ($2::timestamptz AT TIME ZONE 'UTC')::date;

-- name: FoldState
INSERT INTO report_rollup_state (folded_at, conversion_window_ms, attribution_window_ms, order_types, score_types, version)
VALUES (now(), $1, $2, $3, $4, $5)
ON CONFLICT (singleton) DO UPDATE
SET folded_at = excluded.folded_at, conversion_window_ms = excluded.conversion_window_ms,
    attribution_window_ms = excluded.attribution_window_ms, order_types = excluded.order_types,
    score_types = excluded.score_types, version = excluded.version;

-- name: FoldDeleteScores
DELETE FROM report_score_days WHERE day >= ($1::timestamptz AT TIME ZONE 'UTC')::date AND day < ($2::timestamptz AT TIME ZONE 'UTC')::date;

-- name: FoldScores
-- Survey answers (types $3) with a numeric score per UTC day, type and score, in [$1, $2).
SELECT (occurred_at AT TIME ZONE 'UTC')::date, type, (properties->>'score')::numeric, count(*)
FROM events
WHERE type = ANY($3::text[]) AND occurred_at >= $1 AND occurred_at < $2 AND jsonb_typeof(properties->'score') = 'number'
GROUP BY 1, 2, 3;

-- name: ReportScoresRollup
-- ReportScores: $1 kind, the score rollup's days $2, the raw ranges ($3, $4), surveys as in
-- ReportScores ($5 … $9).
WITH k AS (
    SELECT * FROM unnest($5::text[], $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[]) AS k (type, lo, hi, high, low)
), a AS (
    SELECT day::timestamp AS at, type, score, n
    FROM report_score_days
    WHERE day IN (SELECT (d AT TIME ZONE 'UTC')::date FROM unnest($2::timestamptz[]) AS d) AND type = ANY($5::text[])
    UNION ALL
    SELECT e.occurred_at AT TIME ZONE 'UTC', e.type, (e.properties->>'score')::numeric, 1
    FROM events e JOIN unnest($3::timestamptz[], $4::timestamptz[]) AS g (a, b) ON e.occurred_at >= g.a AND e.occurred_at < g.b
    WHERE e.type = ANY($5::text[]) AND jsonb_typeof(e.properties->'score') = 'number'
)
SELECT date_trunc($1::text, a.at), k.type,
       COALESCE(sum(a.n) FILTER (WHERE a.score >= k.high), 0)::bigint, COALESCE(sum(a.n) FILTER (WHERE a.score <= k.low), 0)::bigint,
       sum(a.n)::bigint
FROM a
JOIN k ON k.type = a.type
WHERE a.score BETWEEN k.lo AND k.hi
GROUP BY 1, 2
ORDER BY 1, 2;
