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

// Defaults for points expiry.
const (
	// PointsExpiryIntervalDefault is how often expired and expiring points
	// lots are looked for.
	PointsExpiryIntervalDefault = 5 * time.Minute
	// PointsExpiryBatchDefault is how many lots one transaction closes or
	// reminds of.
	PointsExpiryBatchDefault = 5000
)

// PointsExpiryWorker closes the points lots whose expiry has passed, in
// batches (store.Store.ExpirePoints turns what is left of each into an
// expiry entry), recording a points_expired event per lot, and records a
// points_expiring event once per lot the rule set's
// defaults.points_expiring_days before it expires. Events, ledger entries
// and their evaluation jobs commit together, so each lot is reported once.
type PointsExpiryWorker struct {
	river.WorkerDefaults[jobs.PointsExpiryArgs]

	pool   *pgxpool.Pool
	rules  *rules.Holder
	now    Clock
	batch  int
	logger *slog.Logger
}

// Work expires and reminds of every due lot, in batches.
func (w *PointsExpiryWorker) Work(ctx context.Context, _ *river.Job[jobs.PointsExpiryArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	stats, err := w.Run(ctx, client)
	if stats.Expired+stats.Reminded > 0 {
		w.logger.InfoContext(ctx, "points expiry: lots expired and reminded of",
			slog.Int("num_expired", stats.Expired), slog.Int("num_reminded", stats.Reminded))
	}
	return err
}

// PointsExpiryStats counts what one run did.
type PointsExpiryStats struct {
	Expired, Reminded int
}

// Run expires and reminds of every due lot, in batches of the worker's
// size, enqueueing the events' evaluation with client.
func (w *PointsExpiryWorker) Run(ctx context.Context, client *river.Client[pgx.Tx]) (PointsExpiryStats, error) {
	var stats PointsExpiryStats
	batch := valOrDefault(w.batch, PointsExpiryBatchDefault)
	for _, expire := range []bool{true, false} {
		for {
			n, err := w.runBatch(ctx, client, expire, batch)
			if expire {
				stats.Expired += n
			} else {
				stats.Reminded += n
			}
			if err != nil {
				return stats, err
			}
			if n < batch {
				break
			}
		}
	}
	return stats, nil
}

func (w *PointsExpiryWorker) runBatch(ctx context.Context, client *river.Client[pgx.Tx], expire bool, limit int) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		st := store.New(tx)
		now := w.now()
		var (
			lots []store.PointsExpired
			typ  = store.EventPointsExpired
			err  error
		)
		if expire {
			lots, err = st.ExpirePoints(ctx, now, limit)
		} else {
			typ = store.EventPointsExpiring
			days := time.Duration(w.rules.Load().Defaults.ExpiringDays()) * 24 * time.Hour
			lots, err = st.RemindPoints(ctx, now, now.Add(days), limit)
		}
		if err != nil || len(lots) == 0 {
			return err
		}
		n = len(lots)
		evs, err := st.InsertPointsEvents(ctx, store.LotEvents(typ, lots, now), now)
		if err != nil {
			return err
		}
		return ingest.EnqueueEvaluations(ctx, tx, client, evs)
	})
	if err != nil {
		return 0, fmt.Errorf("points expiry: %w", err)
	}
	return n, nil
}

// pointsExpiryPeriodicJob runs points expiry every PointsExpiryInterval and
// once at start.
func pointsExpiryPeriodicJob(cfg *Config) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(cfg.PointsExpiryInterval),
		func() (river.JobArgs, *river.InsertOpts) { return jobs.PointsExpiryArgs{}, nil },
		&river.PeriodicJobOpts{ID: "ciclo.points_expiry", RunOnStart: true})
}
