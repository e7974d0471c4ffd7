package worker_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/templates"
	"github.com/ciclohq/ciclo/unsubscribe"
	"github.com/ciclohq/ciclo/worker"
)

// retryNow retries a job at once.
type retryNow struct{}

func (retryNow) NextRetry(*rivertype.JobRow) time.Time { return time.Now() }

func TestRescueAfter(t *testing.T) {
	t.Parallel()

	baseConfig := func(t *testing.T, b *sweepBundle) *worker.Config {
		t.Helper()
		tset, err := templates.New("")
		require.NoError(t, err)
		return &worker.Config{
			Rules:  b.rules,
			Now:    b.clock.Now,
			Schema: b.db.Schema,
			Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
			Dispatch: &worker.DispatchConfig{
				Email: nopChannel{"email"}, Webhook: nopChannel{"webhook"}, Templates: tset,
				Unsubscribe: unsubscribe.NewSigner("secret", "http://localhost"), From: "shop@example.com",
			},
			CouponExpiryInterval: time.Hour,
		}
	}

	t.Run("ReachesRiverConfig", func(t *testing.T) {
		t.Parallel()
		b := &sweepBundle{rules: rules.NewHolder(parseRules(t, sweepRules)), clock: &testClock{}, db: &testdb.DB{}}
		cfg := baseConfig(t, b)
		rc, err := worker.RiverConfig(nil, cfg)
		require.NoError(t, err)
		require.Equal(t, worker.RescueAfterDefault, rc.RescueStuckJobsAfter)
		require.Equal(t, 11*time.Minute, rc.RescueStuckJobsAfter, "minutes, not River's hour")
		require.Equal(t, worker.JobTimeoutDefault, rc.JobTimeout)

		cfg.RescueAfter = 90 * time.Second // shorter than a dispatch batch may run
		_, err = worker.RiverConfig(nil, cfg)
		require.ErrorContains(t, err, "RescueAfter 1m30s must be longer than BatchTimeout 10m0s")

		cfg.BatchTimeout = 80 * time.Second
		rc, err = worker.RiverConfig(nil, cfg)
		require.NoError(t, err)
		require.Equal(t, 90*time.Second, rc.RescueStuckJobsAfter)
		require.Equal(t, worker.JobTimeoutDefault, rc.JobTimeout)

		cfg.RescueAfter, cfg.BatchTimeout = 3*time.Second, 2*time.Second // the reliability suite's setting
		rc, err = worker.RiverConfig(nil, cfg)
		require.NoError(t, err)
		require.Equal(t, 2*time.Second, rc.JobTimeout, "other jobs get no longer than a batch")
		cfg.BatchTimeout = 0

		cfg.RescueAfter = 30 * time.Second // shorter than the one-minute job timeout
		_, err = worker.RiverConfig(nil, cfg)
		require.ErrorContains(t, err, "RescueAfter 30s must be longer than JobTimeout 1m0s")
	})

	// A job left running by a worker that died (attempted 20 s ago, by a
	// client that is gone) is rescued and completed by another within
	// seconds when RescueAfter is a few seconds. With River's default of an
	// hour it would stay running.
	t.Run("RescuesAStuckJob", func(t *testing.T) {
		t.Parallel()
		b := setupSweep(t, sweepRules)
		tick := b.clock.Now()
		over := b.loadCustomers(t, 300, tick)
		args, err := json.Marshal(jobs.SweepArgs{Tick: tick, Rules: []string{"at-risk"}})
		require.NoError(t, err)
		ctx := context.Background()
		var id int64
		require.NoError(t, b.db.Pool.QueryRow(ctx, `INSERT INTO river_job
			(state, attempt, max_attempts, attempted_at, attempted_by, kind, args, queue, priority, scheduled_at, created_at)
			VALUES ('running', 1, 25, now() - interval '20 seconds', ARRAY['killed-worker'], $1, $2, $3, 1,
			        now() - interval '20 seconds', now() - interval '20 seconds')
			RETURNING id`, jobs.SweepArgs{}.Kind(), args, jobs.QueueSweep).Scan(&id))

		cfg := baseConfig(t, b)
		cfg.RescueAfter, cfg.BatchTimeout, cfg.JobTimeout, cfg.RetryPolicy = 3*time.Second, 2*time.Second, time.Second, retryNow{}
		client, err := worker.NewClient(b.db.Pool, cfg)
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, client.Start(ctx))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, client.Stop(ctx))
		})

		deadline := start.Add(30 * time.Second)
		var state string
		for time.Now().Before(deadline) {
			require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT state FROM river_job WHERE id = $1", id).Scan(&state))
			if state == "completed" {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		require.Equal(t, "completed", state, "the stuck sweep job was not rescued within 30 s")
		t.Logf("stuck job rescued and completed %s after the client started", time.Since(start).Round(time.Millisecond))
		waitJobs(t, b.db)
		require.Equal(t, len(over), b.db.Count(t, "rule_firings", "rule = 'at-risk'"), "the rescued sweep fired")
		var errs string
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT errors::text FROM river_job WHERE id = $1", id).Scan(&errs))
		require.Contains(t, errs, "Stuck job rescued")
	})

	// A job whose worker already died once while running it is left
	// running by a second dead worker: once rescued again it is cancelled,
	// not run, so it cannot take down a third.
	t.Run("CancelsAJobWorkersDiedRunningTwice", func(t *testing.T) {
		t.Parallel()
		b := setupSweep(t, sweepRules)
		tick := b.clock.Now()
		b.loadCustomers(t, 50, tick)
		args, err := json.Marshal(jobs.SweepArgs{Tick: tick, Rules: []string{"at-risk"}})
		require.NoError(t, err)
		ctx := context.Background()
		var id int64
		require.NoError(t, b.db.Pool.QueryRow(ctx, `INSERT INTO river_job
			(state, attempt, max_attempts, attempted_at, attempted_by, kind, args, queue, priority, scheduled_at, created_at, errors)
			VALUES ('running', 2, 25, now() - interval '20 seconds', ARRAY['killed-worker', 'killed-again'], $1, $2, $3, 1,
			        now() - interval '40 seconds', now() - interval '40 seconds',
			        ARRAY[jsonb_build_object('at', now() - interval '30 seconds', 'attempt', 1, 'error', 'Stuck job rescued by JobRescuer', 'trace', '')])
			RETURNING id`, jobs.SweepArgs{}.Kind(), args, jobs.QueueSweep).Scan(&id))

		cfg := baseConfig(t, b)
		cfg.RescueAfter, cfg.BatchTimeout, cfg.JobTimeout, cfg.RetryPolicy = 3*time.Second, 2*time.Second, time.Second, retryNow{}
		client, err := worker.NewClient(b.db.Pool, cfg)
		require.NoError(t, err)
		require.NoError(t, client.Start(ctx))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, client.Stop(ctx))
		})
		var state string
		for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT state FROM river_job WHERE id = $1", id).Scan(&state))
			if state == "cancelled" || state == "completed" {
				break
			}
		}
		require.Equal(t, "cancelled", state)
		var errs string
		require.NoError(t, b.db.Pool.QueryRow(ctx, "SELECT errors::text FROM river_job WHERE id = $1", id).Scan(&errs))
		require.Contains(t, errs, "was running in a worker that died 2 times")
		require.Equal(t, 0, b.db.Count(t, "rule_firings", ""), "the job did not run")
	})
}
