-- name: RecomputeTiers
-- Derives the tier of up to @limit customers (those in @ids, or all when it is NULL; after key
-- @after, in key order) from the tiers given as arrays (@names, @kinds 'spend'/'points', @overs,
-- @mins; lowest first): the highest tier whose threshold the customer's net spend (cents) or
-- points earned over the tier's window reach. Lifetime spend is total_spent_cents; spend over a
-- window is total_spent_cents less the total the customer's last event before the window's start
-- (@cal_start, @roll_start) recorded in its facts. Points earned are grant entries less
-- reversals since the window's start. A changed tier is written, logged in tier_transitions at
-- @now with @reason and @version, and returned; a customer whose tier changed meanwhile is left
-- to the next run. Every row carries the last key read and how many customers were read (one
-- row with NULLs when nothing changed).
WITH tier AS (
    SELECT * FROM unnest(@names::text[], @kinds::text[], @overs::text[], @mins::bigint[])
        WITH ORDINALITY AS t (name, kind, over, min, ord)
), cust AS (
    SELECT id, tier, total_spent_cents FROM customers
    WHERE (@ids::text[] IS NULL OR id = ANY(@ids::text[])) AND id > @after::text
      AND (cardinality(@names::text[]) > 0 OR tier <> '')
    ORDER BY id
    LIMIT @limit
), win AS (
    SELECT over,
           CASE over WHEN 'calendar_year' THEN @cal_start::timestamptz
                     WHEN 'rolling_365d' THEN @roll_start::timestamptz END AS since,
           bool_or(kind = 'spend') AS by_spend, bool_or(kind = 'points') AS by_points
    FROM tier GROUP BY over
), progress AS (
    SELECT c.id, w.over,
           CASE WHEN NOT w.by_spend THEN 0
                WHEN w.since IS NULL THEN c.total_spent_cents
                ELSE c.total_spent_cents - COALESCE((
                    SELECT (e.facts->>'total_spent_cents')::bigint FROM events e
                    WHERE e.customer_id = c.id AND e.occurred_at < w.since AND e.facts ? 'total_spent_cents'
                    ORDER BY e.occurred_at DESC, e.id DESC LIMIT 1), 0)
           END AS spend,
           CASE WHEN NOT w.by_points THEN 0
                ELSE COALESCE((
                    SELECT sum(p.amount) FROM points_entries p
                    WHERE p.customer_id = c.id AND p.kind IN ('grant', 'reverse')
                      AND (w.since IS NULL OR p.created_at >= w.since)), 0)
           END AS points
    FROM cust c CROSS JOIN win w
), next AS (
    SELECT c.id, c.tier AS from_tier, COALESCE((
        SELECT t.name FROM tier t JOIN progress p ON p.id = c.id AND p.over = t.over
        WHERE CASE t.kind WHEN 'points' THEN p.points ELSE p.spend END >= t.min
        ORDER BY t.ord DESC LIMIT 1), '') AS to_tier
    FROM cust c
), upd AS (
    UPDATE customers SET tier = n.to_tier
    FROM next n
    WHERE customers.id = n.id AND n.to_tier <> n.from_tier AND customers.tier = n.from_tier
    RETURNING customers.id, n.from_tier, n.to_tier
), tt AS (
    INSERT INTO tier_transitions (customer_id, from_tier, to_tier, rule_set_version, occurred_at, reason)
    SELECT id, from_tier, to_tier, @version, @now, @reason FROM upd
    RETURNING customer_id, id, from_tier, to_tier
)
SELECT (SELECT max(id) FROM cust), (SELECT count(*) FROM cust), tt.customer_id, tt.id, tt.from_tier, tt.to_tier
FROM (SELECT 1) one LEFT JOIN tt ON true
ORDER BY tt.customer_id;
