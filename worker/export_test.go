package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// FireTx fires r for customer c and occurrence in tx and enqueues its
// dispatch jobs, the way the evaluate worker fires an event's rule. It
// returns nil when the rule had fired for the occurrence already.
func FireTx(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], version string, r *rules.Rule,
	c *store.Customer, occurrence string, eventID int64, now time.Time,
) (*store.Fire, error) {
	fr := newFirer(version)
	in := rules.Input{Customer: store.RuleCustomer(c), Now: now}
	f, err := fr.fire(r, c, &in, occurrence, eventID, now)
	if err != nil {
		return nil, err
	}
	ds, err := fr.write(ctx, store.New(tx), []*store.Fire{f}, nil)
	if err != nil || !f.Fired {
		return nil, err
	}
	if err := insertDispatchJobs(ctx, tx, client, ds, false); err != nil {
		return nil, err
	}
	return f, fr.insertEvaluateJobs(ctx, tx, client)
}

// FireManyTx fires r for each of customers in tx and enqueues all their
// deliveries at once, in batches, the way a sweep does. For benchmarks.
func FireManyTx(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], version string, r *rules.Rule,
	customers []*store.Customer, occurrence string, now time.Time,
) error {
	fr := newFirer(version)
	fs := make([]*store.Fire, 0, len(customers))
	for _, c := range customers {
		in := rules.Input{Customer: store.RuleCustomer(c), Now: now}
		f, err := fr.fire(r, c, &in, occurrence, 0, now)
		if err != nil {
			return err
		}
		fs = append(fs, f)
	}
	ds, err := fr.write(ctx, store.New(tx), fs, nil)
	if err != nil {
		return err
	}
	return insertDispatchJobs(ctx, tx, client, ds, true)
}

// RiverConfig is the River configuration NewClient builds from cfg.
func RiverConfig(pool *pgxpool.Pool, cfg *Config) (*river.Config, error) {
	return riverConfig(pool, cfg)
}

// ResumeJourneyRunsTx resumes the runs refs in tx as a journey step job
// would. For benchmarks.
func ResumeJourneyRunsTx(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], h *rules.Holder,
	refs []store.RunRef, now time.Time,
) error {
	return newJourneys(h, slog.Default()).resume(ctx, tx, client, refs, now)
}

// NewTierSweepWorker returns a tier sweep reading page customers per
// transaction (0: the default), for tests.
func NewTierSweepWorker(pool *pgxpool.Pool, rs *rules.Holder, now Clock, page int) *TierSweepWorker {
	return &TierSweepWorker{pool: pool, rules: rs, now: now, page: page, logger: slog.New(slog.DiscardHandler)}
}

// NewPointsExpiryWorker returns a points expiry worker for tests.
func NewPointsExpiryWorker(pool *pgxpool.Pool, rs *rules.Holder, now Clock, batch int) *PointsExpiryWorker {
	return &PointsExpiryWorker{pool: pool, rules: rs, now: now, batch: batch, logger: slog.New(slog.DiscardHandler)}
}

// SetPointsExpiryParts sets how many connections w's expiry uses side by
// side (0: the default).
func SetPointsExpiryParts(w *PointsExpiryWorker, parts int) { w.parts = parts }

// SetBeforeSend makes the dispatchers built from d call f right before each
// send is guarded against erasure and handed to its channel.
func SetBeforeSend(d *DispatchConfig, f func(ctx context.Context, to string)) {
	d.beforeSend = func(ctx context.Context, m *channels.Message) { f(ctx, m.To) }
}
