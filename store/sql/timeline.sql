-- name: CustomerTimeline
-- Lists the latest $2 things that happened to one customer, newest first: events, rule firings,
-- stage transitions, coupons, deliveries, points ledger entries, tier changes, rules skipped because their condition failed at run
-- time, and queued deliveries held back by their dispatch job's schedule ("why did this customer
-- get this", and why not yet): a job snoozed (River's snoozes) or, for a delivery never tried,
-- scheduled later is held by quiet hours; a retryable one waits for its retry. Journey runs: their
-- start, each step executed and their end (done, exited, or stopped and why).
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
    UNION ALL
    SELECT skipped_at, 'skipped', 6, id, rule, rule_set_version,
           jsonb_build_object('event_id', event_id, 'error', error)
    FROM rule_skips WHERE customer_id = $1
    UNION ALL
    SELECT COALESCE(j.attempted_at, j.created_at), 'held', 7, d.id, d.rule, '',
           jsonb_build_object('until', j.scheduled_at,
                              'reason', CASE WHEN j.state = 'scheduled' AND (j.metadata ? 'snoozes' OR d.attempts = 0)
                                             THEN 'quiet_hours' ELSE 'retry' END,
                              'channel', d.channel, 'timezone', c.timezone, 'last_error', d.last_error)
    FROM deliveries d
    JOIN river_job j ON j.kind = 'ciclo.dispatch' AND j.args @> jsonb_build_object('customer_id', $1::text)
                    AND (j.args->>'delivery_id')::bigint = d.id AND j.state IN ('scheduled', 'retryable')
    JOIN customers c ON c.id = d.customer_id
    WHERE d.customer_id = $1 AND d.status = 'queued'
    UNION ALL
    SELECT started_at, 'run', 8, id, rule, rule_set_version,
           jsonb_build_object('key', key, 'start_event_id', start_event_id)
    FROM journey_runs WHERE customer_id = $1
    UNION ALL
    SELECT s.executed_at, 'step', 9, s.run_id, r.rule, r.rule_set_version,
           jsonb_build_object('step', s.step, 'pc', s.pc, 'firing_id', s.firing_id)
    FROM journey_steps s JOIN journey_runs r ON r.customer_id = s.customer_id AND r.id = s.run_id
    WHERE s.customer_id = $1
    UNION ALL
    SELECT ended_at, 'run_ended', 10, id, rule, rule_set_version,
           jsonb_build_object('state', state, 'reason', exit_reason)
    FROM journey_runs WHERE customer_id = $1 AND ended_at IS NOT NULL
    UNION ALL
    SELECT e.created_at, 'points', 11, e.id, COALESCE(l.rule, ''), '',
           jsonb_build_object('kind', e.kind, 'amount', e.amount, 'lot_id', e.lot_id,
                              'reason', COALESCE(o.reason, l.reason, ''), 'order_id', COALESCE(o.order_id, l.order_id, ''),
                              'expires_at', CASE WHEN e.kind = 'grant' THEN l.expires_at END,
                              'available_at', CASE WHEN e.kind = 'grant' THEN l.available_at END)
    FROM points_entries e
    LEFT JOIN points_lots l ON l.customer_id = e.customer_id AND l.id = e.lot_id
    LEFT JOIN points_operations o ON o.customer_id = e.customer_id AND o.id = e.operation_id
    WHERE e.customer_id = $1
    UNION ALL
    SELECT occurred_at, 'tier', 12, id, '', rule_set_version,
           jsonb_build_object('from', from_tier, 'to', to_tier, 'reason', reason)
    FROM tier_transitions WHERE customer_id = $1
) t
ORDER BY at DESC, ord DESC, id DESC
LIMIT $2;
