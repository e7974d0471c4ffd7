-- name: QueueDepth
-- Counts River's unfinished, cancelled and discarded jobs by queue and state, for metrics (the FROM placeholder is River's schema prefix).
SELECT queue, state::text, count(*)
FROM %sriver_job
WHERE state <> 'completed'
GROUP BY queue, state
ORDER BY queue, state;

-- name: NotifyInsert
-- Sends River's insert notification for queue $1, in a transaction of its own that commits without waiting for the WAL flush: NOTIFY takes a lock that is global to the cluster and held until the commit ends, so a notification inside a durable commit makes every notifying transaction wait for this one's fsync.
SELECT set_config('synchronous_commit', 'off', true), pg_notify(concat(current_schema(), '.river_insert'), json_build_object('queue', $1::text)::text);
