-- name: CustomerTimeline
-- Lists the latest $2 things that happened to one customer, newest first: events, rule firings,
-- stage transitions, coupons and deliveries ("why did this customer get this").
SELECT at, kind, id, rule, rule_set_version, detail FROM (
    SELECT occurred_at AS at, 'event' AS kind, 1 AS ord, id, '' AS rule, '' AS rule_set_version,
           jsonb_build_object('type', type, 'properties', properties) AS detail
    FROM events WHERE customer_id = $1
    UNION ALL
    SELECT fired_at, 'firing', 2, id, rule, rule_set_version,
           jsonb_build_object('occurrence', occurrence, 'event_id', event_id)
    FROM rule_firings WHERE customer_id = $1
    UNION ALL
    SELECT occurred_at, 'transition', 3, id, COALESCE(rule, ''), rule_set_version,
           jsonb_build_object('from', from_stage, 'to', to_stage, 'firing_id', firing_id)
    FROM stage_transitions WHERE customer_id = $1
    UNION ALL
    SELECT created_at, 'coupon', 4, id, rule, '',
           jsonb_build_object('code', code, 'kind', kind, 'value', value, 'expires_at', expires_at,
                              'redeemed_at', redeemed_at, 'firing_id', firing_id)
    FROM coupons WHERE customer_id = $1
    UNION ALL
    SELECT created_at, 'delivery', 5, id, rule, '',
           jsonb_build_object('channel', channel, 'status', status, 'attempts', attempts,
                              'last_error', last_error, 'sent_at', sent_at, 'action', action,
                              'firing_id', firing_id)
    FROM deliveries WHERE customer_id = $1
) t
ORDER BY at DESC, ord DESC, id DESC
LIMIT $2;
