package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/worker"
)

// jobsRules has no rule for the ingested events: each evaluate job locks
// its customer, claims the event, matches the rule set and fires nothing,
// so the row measures a job's overhead in ciclo's workers.
const jobsRules = `version: 1
rules:
  - {name: never, on: bench_never, actions: [{email: {template: welcome}}]}
`

// noopQueue is the baseline's queue, beside ciclo's in the row's schema.
const noopQueue = "bench_noop"

// noopArgs is the baseline's job: its worker does nothing.
type noopArgs struct {
	N int `json:"n"`
}

func (noopArgs) Kind() string { return "bench.noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// jobs measures evaluate jobs worked per second by ciclo's River client
// (its queue settings, middleware and EvaluateWorker), from resuming the
// queue with n jobs waiting until none is left, against a River client with
// the same queue settings working as many no-op jobs.
func (r *runner) jobs(ctx context.Context) ([]Row, error) {
	n := r.sizes.jobs
	r.progress("jobs: starting ciclo on a fresh schema")
	e, err := r.newEnv(ctx, envOptions{role: app.RoleAll, rules: jobsRules})
	if err != nil {
		return nil, err
	}
	defer e.close()
	noop, err := newNoopClient(e)
	if err != nil {
		return nil, err
	}
	if err := noop.Start(ctx); err != nil {
		return nil, fmt.Errorf("start no-op client: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = noop.Stop(sctx)
	}()
	evaluate := jobs.EvaluateArgs{}.Kind()

	ResetPeakRSS()
	samples, err := r.measure(ctx,
		func(ctx context.Context) (float64, error) {
			if err := noop.QueuePause(ctx, noopQueue, nil); err != nil {
				return 0, fmt.Errorf("pause: %w", err)
			}
			params := make([]river.InsertManyParams, n)
			for i := range params {
				params[i] = river.InsertManyParams{Args: noopArgs{N: i}, InsertOpts: &river.InsertOpts{Queue: noopQueue}}
			}
			if _, err := noop.InsertManyFast(ctx, params); err != nil {
				return 0, fmt.Errorf("insert no-op jobs: %w", err)
			}
			start := time.Now()
			if err := noop.QueueResume(ctx, noopQueue, nil); err != nil {
				return 0, fmt.Errorf("resume: %w", err)
			}
			if err := waitJobs(ctx, noop, r.sizes.drainTimeout, noopArgs{}.Kind()); err != nil {
				return 0, err
			}
			return float64(n) / time.Since(start).Seconds(), nil
		},
		func(ctx context.Context, run int) (float64, map[string]float64, error) {
			if err := e.app.River.QueuePause(ctx, jobs.QueueEvaluate, nil); err != nil {
				return 0, nil, fmt.Errorf("pause evaluate queue: %w", err)
			}
			// One event per customer, so that every job has a customer of its own.
			for first := 0; first < n; first += ingestBatch {
				var sb strings.Builder
				sb.WriteByte('[')
				for i := first; i < min(first+ingestBatch, n); i++ {
					if i > first {
						sb.WriteByte(',')
					}
					fmt.Fprintf(&sb, `{"customer_id":"j%d-%d","type":"order_placed","idempotency_key":"j%d-%d","properties":{"total":5}}`, run, i, run, i)
				}
				sb.WriteByte(']')
				if err := e.postEvents(ctx, sb.String()); err != nil {
					return 0, nil, err
				}
			}
			start := time.Now()
			if err := e.app.River.QueueResume(ctx, jobs.QueueEvaluate, nil); err != nil {
				return 0, nil, fmt.Errorf("resume evaluate queue: %w", err)
			}
			if err := waitJobs(ctx, e.app.River, r.sizes.drainTimeout, evaluate); err != nil {
				return 0, nil, err
			}
			return float64(n) / time.Since(start).Seconds(), map[string]float64{"jobs": float64(n)}, nil
		})
	if err != nil {
		return nil, err
	}
	row := r.finish(Row{Name: "jobs/evaluate", Size: fmt.Sprintf("%d jobs, %d workers", n, worker.EvaluateWorkersDefault),
		Unit: "jobs/s", Baseline: "no-op River jobs/s, same queue settings"}, samples, false, 0)
	row.Notes = fmt.Sprintf("ciclo's work per job costs %.0f%% of the no-op rate", 100*(1-row.Ratio))
	return []Row{row}, nil
}

// newNoopClient is a River client on the row's schema with one queue of
// ciclo's evaluate settings (workers, fetch cooldown and poll interval).
func newNoopClient(e *env) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &noopWorker{}); err != nil {
		return nil, fmt.Errorf("add no-op worker: %w", err)
	}
	client, err := river.NewClient(riverpgxv5.New(e.pool), &river.Config{
		Schema:            e.schema,
		FetchCooldown:     worker.FetchCooldownDefault,
		FetchPollInterval: worker.FetchPollIntervalDefault,
		Queues:            map[string]river.QueueConfig{noopQueue: {MaxWorkers: worker.EvaluateWorkersDefault}},
		Workers:           workers,
		Logger:            e.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("no-op client: %w", err)
	}
	return client, nil
}
