-- name: QueueDepth
-- Counts River's unfinished, cancelled and discarded jobs by queue and state, for metrics (the FROM placeholder is River's schema prefix).
SELECT queue, state::text, count(*)
FROM %sriver_job
WHERE state <> 'completed'
GROUP BY queue, state
ORDER BY queue, state;
