package bench

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/jobs"
)

// sweep measures a scheduled sweep of ten rules, one of which fires for 10%
// of the customers (stage, coupon, email), against COPY-out of the same
// rows, at each size. The email queue is paused during the sweep, so the
// figure is evaluating and writing (firings, coupons, deliveries, dispatch
// jobs); sending is the dispatch row's.
func (r *runner) sweep(ctx context.Context) ([]Row, error) {
	var rows []Row
	for _, n := range r.sizes.sweep {
		row, err := r.sweepSize(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("%d customers: %w", n, err)
		}
		if len(rows) > 0 {
			prev := rows[len(rows)-1]
			growth := (float64(n) / row.Value) / (prev.Details["customers"] / prev.Value)
			row.Notes = fmt.Sprintf("×%.0f customers took ×%.1f the time of %s", float64(n)/prev.Details["customers"], growth, prev.Name)
			row.Details["time_growth"] = growth
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (r *runner) sweepSize(ctx context.Context, n int) (Row, error) {
	name := "sweep/" + sizeName(n)
	r.progress("%s: starting ciclo on a fresh schema and loading %d customers with COPY", name, n)
	e, err := r.newEnv(ctx, envOptions{role: app.RoleAll, rules: TenPercentRules()})
	if err != nil {
		return Row{}, err
	}
	defer e.close()
	if err := e.app.River.QueuePause(ctx, jobs.QueueEmail, nil); err != nil {
		return Row{}, fmt.Errorf("pause email queue: %w", err)
	}
	now := time.Now()
	if err := CopyCustomers(ctx, e.pool, n, now); err != nil {
		return Row{}, err
	}
	var names []string
	for _, rule := range e.app.Rules.Load().Scheduled() {
		names = append(names, rule.Name)
	}
	ResetPeakRSS()
	samples, err := r.measure(ctx,
		func(ctx context.Context) (float64, error) {
			if err := ResetFirings(ctx, e.pool); err != nil {
				return 0, err
			}
			return CopyOutRate(ctx, e.pool, n)
		},
		func(ctx context.Context, run int) (float64, map[string]float64, error) {
			runtime.GC()
			start := time.Now()
			tick := now.Add(time.Duration(run+1) * time.Minute) // a new sweep, not a duplicate
			if _, err := e.app.River.Insert(ctx, jobs.SweepArgs{Tick: tick, Rules: names}, nil); err != nil {
				return 0, nil, fmt.Errorf("insert sweep: %w", err)
			}
			if err := waitJobs(ctx, e.app.River, r.sizes.drainTimeout, jobs.SweepArgs{}.Kind(), jobs.SweepShardArgs{}.Kind()); err != nil {
				return 0, nil, err
			}
			elapsed := time.Since(start)
			fired, err := e.count(ctx, "rule_firings")
			if err != nil {
				return 0, nil, err
			}
			if fired != n/10 {
				return 0, nil, fmt.Errorf("the sweep fired %d rules, want %d (10%% of %d customers)", fired, n/10, n)
			}
			return float64(n) / elapsed.Seconds(), map[string]float64{
				"customers": float64(n), "firings": float64(fired), "sweep_seconds": elapsed.Seconds(),
			}, nil
		})
	if err != nil {
		return Row{}, err
	}
	return r.finish(Row{Name: name, Size: fmt.Sprintf("%d customers, 10 rules, 10%% firing", n),
		Unit: "customers/s", Baseline: "COPY customers TO STDOUT rows/s"}, samples, false, 0.3), nil
}

// sizeName writes 100000 as 100k and 1000000 as 1M.
func sizeName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}
