package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// Defaults for the sweep settings of Config.
const (
	// SweepWorkersDefault is how many sweep shards one process runs at once.
	SweepWorkersDefault = 4
	// SweepShardSizeDefault is about how many customers one shard covers.
	SweepShardSizeDefault = 100_000
	// SweepPageSizeDefault is how many customers a shard reads per query.
	SweepPageSizeDefault = 5_000
	// SweepFireBatchDefault is how many matching customers a shard gathers,
	// over as many pages as it takes, before it fires them in one
	// transaction. Measured at 1M customers with 10% firing: 2,000 took about
	// 25% less time than 500; 5,000 took longer than both (it holds more
	// locks for longer, and its statements are larger).
	SweepFireBatchDefault = 2_000
	// SweepShardTimeout bounds one shard job.
	SweepShardTimeout = time.Hour
)

// SweepWorker splits a scheduled sweep into shard jobs over key ranges of
// the customers table, sized from Postgres' statistics: ranges of about
// shardSize customers, and at least minShards of them when the table is
// large enough, so that a table of 100,000 customers is swept by all the
// queue's workers at once (measured: see docs/benchmarks.md, sweep).
type SweepWorker struct {
	river.WorkerDefaults[jobs.SweepArgs]

	pool      *pgxpool.Pool
	shardSize int
	// minShards is how many shards a sweep is split into at least, table
	// size permitting: the sweep queue's workers in this process.
	minShards int
	logger    *slog.Logger
}

// Work enqueues the shards of one sweep. Shards are unique per sweep and
// range, so a retried sweep does not enqueue them twice.
func (w *SweepWorker) Work(ctx context.Context, job *river.Job[jobs.SweepArgs]) error {
	bounds, err := store.New(w.pool).KeyBounds(ctx, w.shardSize, w.minShards)
	if err != nil {
		return err
	}
	params := make([]river.InsertManyParams, 0, len(bounds)+1)
	after := ""
	for _, b := range append(bounds, "") {
		params = append(params, river.InsertManyParams{Args: jobs.SweepShardArgs{Tick: job.Args.Tick, Rules: job.Args.Rules, After: after, UpTo: b}})
		after = b
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	if _, err := client.InsertMany(ctx, params); err != nil {
		return fmt.Errorf("enqueue %d sweep shards: %w", len(params), err)
	}
	w.logger.InfoContext(ctx, "sweep: started", slog.Time("tick", job.Args.Tick),
		slog.Any("rules", job.Args.Rules), slog.Int("num_shards", len(params)))
	return nil
}

// SweepShardWorker evaluates a sweep's rules over one key range of customers.
//
// It pages through the range by primary key (keyset), reading only the
// columns the rules read and only the rows their prefilters let through,
// and evaluates every rule in process. The ids of the customers that match
// are gathered over pages until there are about fireBatch of them; those
// customers are then locked, re-read and judged again on current facts,
// and all their firings, stage transitions, coupons, deliveries and
// dispatch jobs are written in bulk in one transaction, in three statements
// (lock, firings with all they do in one, dispatch jobs by COPY). Memory is
// one page and one batch of ids, whatever the number of customers.
type SweepShardWorker struct {
	river.WorkerDefaults[jobs.SweepShardArgs]

	pool     *pgxpool.Pool
	rules    *rules.Holder
	now      Clock
	pageSize int
	// fireBatch is how many matching customers are fired in one
	// transaction, give or take one page's.
	fireBatch int
	logger    *slog.Logger
}

// Timeout lets a shard run longer than River's default minute.
func (w *SweepShardWorker) Timeout(*river.Job[jobs.SweepShardArgs]) time.Duration {
	return SweepShardTimeout
}

// SweepStats counts what one shard did.
type SweepStats struct {
	Read, Matched, Fired int
}

// Work runs one shard. Rules missing from the rule set in force (removed
// by a reload) are skipped. A retry starts the range over; firings already
// written are not written again (unique occurrence).
func (w *SweepShardWorker) Work(ctx context.Context, job *river.Job[jobs.SweepShardArgs]) error {
	rs := w.rules.Load()
	client := river.ClientFromContext[pgx.Tx](ctx)
	start := time.Now()
	stats, err := w.run(ctx, client, rs, job.Args)
	for _, rule := range job.Args.Rules {
		metrics.FromContext(ctx).ObserveSweep(rule, time.Since(start))
	}
	if err != nil {
		return err
	}
	w.logger.InfoContext(ctx, "sweep: shard done", slog.Time("tick", job.Args.Tick), slog.String("after", job.Args.After),
		slog.String("up_to", job.Args.UpTo), slog.Int("num_read", stats.Read), slog.Int("num_matched", stats.Matched),
		slog.Int("num_fired", stats.Fired))
	return nil
}

// sweepPlan is what a shard reads and evaluates.
type sweepPlan struct {
	due   []*rules.Rule
	query *store.SweepQuery
}

func newSweepPlan(rs *rules.RuleSet, names []string) *sweepPlan {
	p := &sweepPlan{}
	var fields []string
	var filters []*rules.Prefilter
	anyone := false
	for _, name := range names {
		r := rs.Rule(name)
		if r == nil || r.Schedule == "" {
			continue
		}
		p.due = append(p.due, r)
		fields = append(fields, r.Fields...)
		if f := r.Prefilter(); f != nil {
			filters = append(filters, f)
		} else {
			anyone = true
		}
	}
	slices.Sort(fields)
	fields = slices.Compact(fields)
	var filter *rules.Prefilter
	switch {
	case anyone || len(filters) == 0:
	case len(filters) == 1:
		filter = filters[0]
	default:
		filter = &rules.Prefilter{Op: rules.PrefilterOr, Args: filters}
	}
	p.query = store.NewSweepQuery(fields, filter)
	return p
}

func (w *SweepShardWorker) run(ctx context.Context, client *river.Client[pgx.Tx], rs *rules.RuleSet, args jobs.SweepShardArgs) (SweepStats, error) {
	var stats SweepStats
	plan := newSweepPlan(rs, args.Rules)
	if len(plan.due) == 0 {
		return stats, nil
	}
	fr := newFirer(rs.Version)
	tick := args.Tick
	if tick.IsZero() {
		tick = w.now()
	}
	st := store.New(w.pool)
	m := rules.NewMatcher(plan.due, tick)
	matched := make([]bool, len(plan.due))
	page := make([]store.Customer, 0, w.pageSize)
	var (
		hits     []string
		evalErrs int
		firstErr error
	)
	after := args.After
	for {
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		var err error
		page, err = st.SweepPage(ctx, plan.query, tick, after, args.UpTo, w.pageSize, page[:0])
		if err != nil {
			return stats, err
		}
		stats.Read += len(page)
		for i := range page {
			rc := store.RuleCustomer(&page[i])
			if err := m.Match(&rc, matched); err != nil {
				evalErrs++
				firstErr = cmpOr(firstErr, err)
			}
			if slices.Contains(matched, true) {
				hits = append(hits, page[i].ID)
			}
		}
		last := len(page) < w.pageSize
		if len(hits) > 0 && (last || len(hits) >= w.fireBatch) {
			stats.Matched += len(hits)
			fired, err := w.fire(ctx, client, fr, plan, m, hits, tick)
			if err != nil {
				return stats, err
			}
			stats.Fired += fired
			hits = hits[:0]
		}
		if last {
			break
		}
		after = page[len(page)-1].ID
	}
	if evalErrs > 0 {
		w.logger.WarnContext(ctx, "sweep: rules failed at run time for some customers; skipped",
			slog.Int("num_customers", evalErrs), slog.String("error", firstErr.Error()))
	}
	return stats, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// sweepOccurrence keys a scheduled firing: the cooldown window of the tick
// for rules with a cooldown, else the tick itself.
func sweepOccurrence(r *rules.Rule, tick time.Time) string {
	if r.Cooldown > 0 {
		return rules.Occurrence(r, 0, tick)
	}
	return "tick:" + tick.UTC().Format(time.RFC3339)
}

// fire locks the page's matching customers, judges them again on current
// facts and writes everything their firings do, in bulk and in one
// transaction. It returns the number of firings written.
func (w *SweepShardWorker) fire(ctx context.Context, client *river.Client[pgx.Tx], fr *firer, plan *sweepPlan,
	m *rules.Matcher, ids []string, tick time.Time,
) (int, error) {
	fired := 0
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		st := store.New(tx)
		custs, err := st.LockSweepCustomers(ctx, plan.query, tick, ids, nil)
		if err != nil {
			return err
		}
		now := w.now()
		var fires []*store.Fire
		matched := make([]bool, len(plan.due))
		for i := range custs {
			rc := store.RuleCustomer(&custs[i])
			_ = m.Match(&rc, matched) // errors were logged on the first pass
			for j, ok := range matched {
				if !ok {
					continue
				}
				r := plan.due[j]
				in := rules.Input{Customer: rc, Now: tick}
				f, err := fr.fire(r, &custs[i], &in, sweepOccurrence(r, tick), 0, now)
				var pe *pointsAmountError
				if errors.As(err, &pe) {
					continue // as a rule whose when fails: skipped for this customer
				}
				if err != nil {
					return err
				}
				fires = append(fires, f)
			}
		}
		deliveries, err := fr.write(ctx, st, fires, nil)
		if err != nil {
			return err
		}
		for _, f := range fires {
			if f.Fired {
				fired++
			}
		}
		if err := insertDispatchJobs(ctx, tx, client, deliveries, true); err != nil {
			return err
		}
		return fr.insertEvaluateJobs(ctx, tx, client)
	})
	if err != nil {
		return 0, fmt.Errorf("fire sweep page of %d customers: %w", len(ids), err)
	}
	return fired, nil
}

// addSweepWorkers registers the sweep, shard and coupon expiry workers.
func addSweepWorkers(workers *river.Workers, pool *pgxpool.Pool, cfg *Config) error {
	if err := river.AddWorkerSafely(workers, &SweepWorker{pool: pool, shardSize: cfg.SweepShardSize, minShards: cfg.SweepWorkers, logger: cfg.Logger}); err != nil {
		return fmt.Errorf("add sweep worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &SweepShardWorker{pool: pool, rules: cfg.Rules, now: cfg.Now,
		pageSize: cfg.SweepPageSize, fireBatch: cfg.SweepFireBatch, logger: cfg.Logger}); err != nil {
		return fmt.Errorf("add sweep shard worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &CouponExpiryWorker{pool: pool, now: cfg.Now, logger: cfg.Logger}); err != nil {
		return fmt.Errorf("add coupon expiry worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &PointsExpiryWorker{pool: pool, rules: cfg.Rules, now: cfg.Now,
		batch: cfg.PointsExpiryBatch, parts: cfg.PointsExpiryParts, logger: cfg.Logger}); err != nil {
		return fmt.Errorf("add points expiry worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &ReportFoldWorker{pool: pool, logger: cfg.Logger}); err != nil {
		return fmt.Errorf("add report fold worker: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &TierSweepWorker{pool: pool, rules: cfg.Rules, now: cfg.Now, logger: cfg.Logger}); err != nil {
		return fmt.Errorf("add tier sweep worker: %w", err)
	}
	return nil
}

// couponExpiryPeriodicJob reports expired coupons every CouponExpiryInterval
// and once at start.
func couponExpiryPeriodicJob(cfg *Config) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(cfg.CouponExpiryInterval),
		func() (river.JobArgs, *river.InsertOpts) { return jobs.CouponExpiryArgs{}, nil },
		&river.PeriodicJobOpts{ID: "ciclo.coupon_expiry", RunOnStart: true})
}
