-- name: SaveRuleSetSource
-- Keeps a rule-set version's file so that runs started on it can go on after a reload.
INSERT INTO rule_set_sources (version, source) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING;

-- name: RuleSetSource
-- Returns the file of a rule-set version.
SELECT source FROM rule_set_sources WHERE version = $1;

-- name: StartJourneyRun
-- Starts a run unless one is active for the customer, rule and key (and re-entry is not
-- allowed), the event already started one, or one started within the cooldown ($8 ms, 0 = none).
-- Returns the new run's id; no row when refused.
INSERT INTO journey_runs (customer_id, rule, key, rule_set_version, state, reentry_allowed, start_event_id, started_at)
SELECT $1, $2, $3, $4, 'running', $5, $6, $7
WHERE $8::bigint = 0 OR NOT EXISTS (
    SELECT 1 FROM journey_runs p
    WHERE p.customer_id = $1 AND p.rule = $2 AND p.key = $3
      AND p.started_at > $7::timestamptz - $8::bigint * interval '1 millisecond')
ON CONFLICT DO NOTHING
RETURNING id;

-- name: LockJourneyRuns
-- Locks the customers ($1, sorted) and then the named runs ($1 customers, $2 run ids) whose seq is
-- still $3 (a step job names the seq it resumes: any other one is stale), and returns the active ones.
WITH c AS (
    SELECT id FROM customers WHERE id = ANY ($1::text[]) ORDER BY id FOR UPDATE
)
SELECT r.id, r.customer_id, r.rule, r.key, r.rule_set_version, r.pc, r.seq, r.state,
       COALESCE(r.wait_event, ''), COALESCE(r.next_step_at, 'epoch'::timestamptz), r.started_at,
       COALESCE(r.start_event_id, 0)
FROM unnest($1::text[], $2::bigint[], $3::int[]) AS v(customer_id, id, seq)
JOIN journey_runs r ON r.customer_id = v.customer_id AND r.id = v.id AND r.seq = v.seq
WHERE r.ended_at IS NULL AND (SELECT count(*) FROM c) >= 0
ORDER BY r.customer_id, r.id
FOR UPDATE OF r;

-- name: ActiveJourneyRuns
-- Returns a customer's active runs (the caller holds the customer's row lock).
SELECT id, customer_id, rule, key, rule_set_version, pc, seq, state,
       COALESCE(wait_event, ''), COALESCE(next_step_at, 'epoch'::timestamptz), started_at,
       COALESCE(start_event_id, 0)
FROM journey_runs
WHERE customer_id = $1 AND ended_at IS NULL
ORDER BY id;

-- name: UpdateJourneyRuns
-- Writes where runs are after a step: pc, seq, state, awaited event, next step time, end and reason.
UPDATE journey_runs r SET
    pc = v.pc, seq = v.seq, state = v.state, wait_event = NULLIF(v.wait_event, ''),
    next_step_at = v.next_step_at, ended_at = v.ended_at, exit_reason = NULLIF(v.exit_reason, '')
FROM unnest($1::text[], $2::bigint[], $3::int[], $4::int[], $5::text[], $6::text[], $7::timestamptz[],
            $8::timestamptz[], $9::text[])
     AS v(customer_id, id, pc, seq, state, wait_event, next_step_at, ended_at, exit_reason)
WHERE r.customer_id = v.customer_id AND r.id = v.id;

-- name: InsertJourneySteps
-- Records executed steps, unique per run and step; returns those not recorded before.
INSERT INTO journey_steps (customer_id, run_id, pc, seq, step, executed_at)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::int[], $5::text[], $6::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING run_id, pc;

-- name: CustomerJourneyRuns
-- Lists a customer's runs, newest first, with their last executed step.
SELECT r.id, r.rule, r.key, r.rule_set_version, r.pc, r.state, COALESCE(r.wait_event, ''),
       r.next_step_at, r.started_at, r.ended_at, COALESCE(r.exit_reason, ''),
       COALESCE((SELECT s.step FROM journey_steps s WHERE s.customer_id = r.customer_id AND s.run_id = r.id
                 ORDER BY s.pc DESC LIMIT 1), '')
FROM journey_runs r
WHERE r.customer_id = $1
ORDER BY r.id DESC
LIMIT $2;
