package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// Defaults for the tier sweep.
const (
	// TierSweepIntervalDefault is how often every customer's tier is
	// derived again.
	TierSweepIntervalDefault = 24 * time.Hour
	// TierSweepPageDefault is how many customers one tier sweep
	// transaction reads.
	TierSweepPageDefault = 10_000
)

// TierSweepWorker derives every customer's tier again from its data, a
// page of customers per statement and transaction (store.RecomputeTiers),
// so that a tier falls when its window rolls past a customer's spend or
// points, and follows a rule set whose tiers changed. Each change is
// logged and records a tier_changed event whose evaluation is enqueued in
// the same transaction.
type TierSweepWorker struct {
	river.WorkerDefaults[jobs.TierSweepArgs]

	pool   *pgxpool.Pool
	rules  *rules.Holder
	now    Clock
	page   int
	logger *slog.Logger
}

// TierSweepStats counts what one sweep did.
type TierSweepStats struct {
	Read, Changed int
}

// Work sweeps every customer's tier.
func (w *TierSweepWorker) Work(ctx context.Context, _ *river.Job[jobs.TierSweepArgs]) error {
	stats, err := w.Run(ctx, river.ClientFromContext[pgx.Tx](ctx))
	if err != nil {
		return err
	}
	w.logger.InfoContext(ctx, "tier sweep: done", slog.Int("num_read", stats.Read), slog.Int("num_changed", stats.Changed))
	return nil
}

// Run sweeps every customer's tier, page by page in key order, enqueueing
// the tier_changed events' evaluation with client.
func (w *TierSweepWorker) Run(ctx context.Context, client *river.Client[pgx.Tx]) (TierSweepStats, error) {
	var stats TierSweepStats
	rs := w.rules.Load()
	now := w.now()
	after, size := "", valOrDefault(w.page, TierSweepPageDefault)
	for {
		var page store.TierPage
		err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
			var err error
			page, err = store.New(tx).RecomputeTiers(ctx, &store.TierRecompute{Tiers: rs.Tiers, After: after, Limit: size,
				Now: now, Reason: store.TierReasonSweep, RuleSetVersion: rs.Version})
			if err != nil {
				return err
			}
			return ingest.EnqueueEvaluations(ctx, tx, client, store.TierEvents(page.Changes))
		})
		if err != nil {
			return stats, fmt.Errorf("tier sweep after %q: %w", after, err)
		}
		stats.Read += page.Read
		stats.Changed += len(page.Changes)
		if page.Read < size {
			return stats, nil
		}
		after = page.Last
		w.logger.DebugContext(ctx, "tier sweep: page done", slog.Int("num_read", stats.Read), slog.Int("num_changed", stats.Changed))
	}
}

// tierSweepPeriodicJob runs the tier sweep every TierSweepInterval and
// once at start (a rule set's new tiers apply without waiting a day).
func tierSweepPeriodicJob(cfg *Config) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(cfg.TierSweepInterval),
		func() (river.JobArgs, *river.InsertOpts) { return jobs.TierSweepArgs{}, nil },
		&river.PeriodicJobOpts{ID: "ciclo.tier_sweep", RunOnStart: true})
}
