-- name: FiringExists
-- Says whether a rule already fired for a customer and occurrence (dry runs).
SELECT EXISTS (SELECT 1 FROM rule_firings WHERE customer_id = $1 AND rule = $2 AND occurrence = $3);

-- name: FireRules
-- Writes N rule firings with everything they do, in one statement. Firings (@customer_ids,
-- @rules, @occurrences, @rule_set_versions, @event_ids or NULL, @fired_at, @cooldowns_ms with
-- 0 = none) are unique per customer, rule and occurrence, and a cooldown also looks back across
-- window boundaries: a firing refused is left out with all its effects. The effects name their
-- firing by its 1-based position: stage moves (@stage_firings, @stage_tos; chained per customer
-- in array order, each change logged), coupons (@coupon_firings, @coupon_codes, @coupon_kinds,
-- @coupon_values, @coupon_expires; a code taken already is skipped, the caller draws again) and
-- queued deliveries (@delivery_firings, @delivery_channels, @delivery_actions). Each customer
-- row is updated once: its last stage, and its earliest new coupon expiry.
-- Returns one row per firing written ('firing', position, id), per transition ('transition',
-- position of its stage move, 0, stage left), per coupon stored ('coupon', 0, id, code) and per
-- delivery ('delivery', position, id).
WITH v AS (
    SELECT * FROM unnest(@customer_ids::text[], @rules::text[], @occurrences::text[], @rule_set_versions::text[], @event_ids::bigint[], @fired_at::timestamptz[], @cooldowns_ms::bigint[], @holdouts::boolean[])
        WITH ORDINALITY AS v(customer_id, rule, occurrence, rule_set_version, event_id, fired_at, cooldown_ms, holdout, n)
), f AS (
    INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, event_id, fired_at, holdout)
    SELECT v.customer_id, v.rule, v.occurrence, v.rule_set_version, v.event_id, v.fired_at, v.holdout
    FROM v
    WHERE v.cooldown_ms = 0 OR NOT EXISTS (
        SELECT 1 FROM rule_firings p
        WHERE p.customer_id = v.customer_id AND p.rule = v.rule
          AND p.fired_at > v.fired_at - v.cooldown_ms * interval '1 millisecond')
    ON CONFLICT (customer_id, rule, occurrence) DO NOTHING
    RETURNING id, customer_id, rule
), fv AS (
    -- The firings written, with their position (a rule fires at most once per customer here).
    SELECT f.id, v.customer_id, v.rule, v.rule_set_version, v.fired_at, v.n
    FROM f JOIN v ON v.customer_id = f.customer_id AND v.rule = f.rule
), sv AS (
    -- Their stage moves: each leaves the stage the one before entered, the first the stored one.
    SELECT fv.id AS firing_id, fv.customer_id, fv.rule, fv.rule_set_version, fv.fired_at, s.n, s.to_stage,
           COALESCE(lag(s.to_stage) OVER (PARTITION BY fv.customer_id ORDER BY s.n), c.stage) AS from_stage
    FROM unnest(@stage_firings::bigint[], @stage_tos::text[]) WITH ORDINALITY AS s(firing, to_stage, n)
    JOIN fv ON fv.n = s.firing
    JOIN customers c ON c.id = fv.customer_id
), tv AS (
    SELECT * FROM sv WHERE from_stage <> to_stage
), tr AS (
    INSERT INTO stage_transitions (customer_id, from_stage, to_stage, rule, rule_set_version, firing_id, occurred_at)
    SELECT customer_id, NULLIF(from_stage, ''), to_stage, rule, rule_set_version, firing_id, fired_at
    FROM tv
    ORDER BY n
), cv AS (
    SELECT fv.id AS firing_id, fv.customer_id, fv.rule, fv.fired_at, k.code, k.kind, k.value, k.expires_at
    FROM unnest(@coupon_firings::bigint[], @coupon_codes::text[], @coupon_kinds::text[], @coupon_values::float8[], @coupon_expires::timestamptz[]) AS k(firing, code, kind, value, expires_at)
    JOIN fv ON fv.n = k.firing
), cp AS (
    INSERT INTO coupons (code, customer_id, rule, firing_id, kind, value, created_at, expires_at)
    SELECT code, customer_id, rule, firing_id, kind, value, fired_at, expires_at FROM cv
    ON CONFLICT (code) DO NOTHING
    RETURNING id, code
), cust AS (
    -- One update per customer: the stage its last move entered, its earliest new coupon expiry
    -- (also of coupons whose code must be drawn again).
    UPDATE customers AS c SET
        stage             = COALESCE(u.stage, c.stage),
        stage_entered_at  = COALESCE(u.entered_at, c.stage_entered_at),
        coupon_expires_at = LEAST(c.coupon_expires_at, u.expires_at)
    FROM (
        SELECT customer_id, m.stage, m.entered_at, e.expires_at
        FROM (SELECT DISTINCT ON (customer_id) customer_id, to_stage AS stage, fired_at AS entered_at
              FROM tv ORDER BY customer_id, n DESC) AS m
        FULL JOIN (SELECT customer_id, min(expires_at) AS expires_at FROM cv
                   WHERE expires_at IS NOT NULL GROUP BY customer_id) AS e USING (customer_id)
    ) AS u
    WHERE c.id = u.customer_id
), dv AS MATERIALIZED (
    -- Delivery ids are drawn here, in action order, so that each is returned with its position.
    SELECT nextval('deliveries_id_seq') AS id,
           d.n, fv.id AS firing_id, fv.customer_id, fv.rule, fv.fired_at, d.channel, d.action
    FROM unnest(@delivery_firings::bigint[], @delivery_channels::text[], @delivery_actions::jsonb[]) WITH ORDINALITY AS d(firing, channel, action, n)
    JOIN fv ON fv.n = d.firing
    ORDER BY d.n
), dl AS (
    INSERT INTO deliveries (id, customer_id, firing_id, rule, channel, action, created_at)
    OVERRIDING SYSTEM VALUE
    SELECT id, customer_id, firing_id, rule, channel, action, fired_at FROM dv
)
SELECT 'firing', n, id, '' FROM fv
UNION ALL SELECT 'transition', n, 0, from_stage FROM tv
UNION ALL SELECT 'coupon', 0, id, code FROM cp
UNION ALL SELECT 'delivery', n, id, '' FROM dv;
