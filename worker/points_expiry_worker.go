package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	// reminds of (a batch's events are one per customer when expiring).
	PointsExpiryBatchDefault = 50_000
	// PointsExpiryPartsDefault is how many connections expire lots side by
	// side, each on its share of the customers: the sweep is CPU in one
	// backend per connection (index inserts of the lots' update and of
	// the expiry entries, their foreign-key checks), so two take about
	// half the time on two free cores.
	PointsExpiryPartsDefault = 2
)

// PointsExpiryWorker closes the points lots whose expiry has passed, in
// batches (store.Store.ExpirePoints turns what is left of each into an
// expiry entry), recording a points_expired event per customer and batch,
// and reminds of each lot once the rule set's
// defaults.points_expiring_days before it expires, with a points_expiring
// event per customer and batch. Events, ledger entries and their
// evaluation jobs commit together, so each lot is reported once.
type PointsExpiryWorker struct {
	river.WorkerDefaults[jobs.PointsExpiryArgs]

	pool   *pgxpool.Pool
	rules  *rules.Holder
	now    Clock
	batch  int
	parts  int
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
// size, enqueueing the events' evaluation with client. Expiry runs in the
// worker's number of parts side by side, each on its share of the
// customers (so a customer's lots of a batch still make one event), its
// batches following one another by cursor (each starts where the last
// ended); reminders follow in one.
func (w *PointsExpiryWorker) Run(ctx context.Context, client *river.Client[pgx.Tx]) (PointsExpiryStats, error) {
	var stats PointsExpiryStats
	batch := valOrDefault(w.batch, PointsExpiryBatchDefault)
	parts := valOrDefault(w.parts, PointsExpiryPartsDefault)
	now := w.now()
	expired := make([]int, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for part := range parts {
		wg.Go(func() {
			expired[part], errs[part] = w.expire(ctx, client, now, batch, store.ExpireCursor{Part: part, Parts: parts})
		})
	}
	wg.Wait()
	for _, n := range expired {
		stats.Expired += n
	}
	if err := errors.Join(errs...); err != nil {
		return stats, err
	}
	days := time.Duration(w.rules.Load().Defaults.ExpiringDays()) * 24 * time.Hour
	for {
		var n int
		err := w.inTx(ctx, client, func(st *store.Store) ([]store.PointsEvent, error) {
			var lots []store.PointsExpired
			var err error
			lots, n, err = st.RemindPoints(ctx, now, now.Add(days), batch)
			return store.LotEvents(store.EventPointsExpiring, lots, now), err
		})
		if err != nil {
			return stats, err
		}
		stats.Reminded += n
		if n < batch {
			return stats, nil
		}
	}
}

// expire closes the lots due at now of cursor's part, in batches from
// cursor, and returns how many it closed.
func (w *PointsExpiryWorker) expire(ctx context.Context, client *river.Client[pgx.Tx], now time.Time, batch int, cursor store.ExpireCursor) (int, error) {
	var expired int
	for {
		var b store.ExpiredBatch
		err := w.inTx(ctx, client, func(st *store.Store) ([]store.PointsEvent, error) {
			var err error
			b, err = st.ExpirePoints(ctx, now, batch, cursor)
			return store.LotEvents(store.EventPointsExpired, b.Customers, now), err
		})
		if err != nil {
			return expired, err
		}
		expired += b.Lots
		if b.Lots < batch {
			return expired, nil
		}
		cursor = b.Next
		w.logger.InfoContext(ctx, "points expiry: batch done", slog.Int("part", cursor.Part), slog.Int("num_expired", expired))
	}
}

// inTx runs fn in a transaction and records the events it returns there,
// enqueueing their evaluation.
func (w *PointsExpiryWorker) inTx(ctx context.Context, client *river.Client[pgx.Tx], fn func(*store.Store) ([]store.PointsEvent, error)) error {
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		st := store.New(tx)
		evs, err := fn(st)
		if err != nil || len(evs) == 0 {
			return err
		}
		refs, err := st.InsertPointsEvents(ctx, evs, w.now())
		if err != nil {
			return err
		}
		return ingest.EnqueueEvaluations(ctx, tx, client, refs)
	})
	if err != nil {
		return fmt.Errorf("points expiry: %w", err)
	}
	return nil
}

// pointsExpiryPeriodicJob runs points expiry every PointsExpiryInterval and
// once at start.
func pointsExpiryPeriodicJob(cfg *Config) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(cfg.PointsExpiryInterval),
		func() (river.JobArgs, *river.InsertOpts) { return jobs.PointsExpiryArgs{}, nil },
		&river.PeriodicJobOpts{ID: "ciclo.points_expiry", RunOnStart: true})
}
