package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/jobs"
)

// dispatchRules is a campaign: one scheduled rule emailing every customer,
// with a frequency cap (claimed for every email, holding none back). No
// quiet hours: a run that met them would wait for their end.
const dispatchRules = `version: 1
defaults:
  frequency_cap: { max: 10, per: 7d }
rules:
  - {name: campaign, schedule: "0 9 * * *", cooldown: 1d, when: 'customer.stage == "retention"', actions: [{email: {template: welcome, subject: "Thanks for your order"}}]}
`

// dispatch measures a campaign's sending: a sweep queues one email per
// customer (as batch dispatch jobs) with the email queue paused; the clock
// runs from resuming the queue until the SMTP server has every email and
// no dispatch job is left (each delivery recorded). The baseline sends the
// same number of the same rendered message with raw go-mail over one
// reused connection.
func (r *runner) dispatch(ctx context.Context) ([]Row, error) {
	n := r.sizes.dispatch
	r.progress("dispatch: starting ciclo on a fresh schema and loading %d customers", n)
	e, err := r.newEnv(ctx, envOptions{role: app.RoleAll, rules: dispatchRules})
	if err != nil {
		return nil, err
	}
	defer e.close()
	if err := e.app.River.QueuePause(ctx, jobs.QueueEmail, nil); err != nil {
		return nil, fmt.Errorf("pause email queue: %w", err)
	}
	now := time.Now()
	if err := CopyCustomers(ctx, e.pool, n, now); err != nil {
		return nil, err
	}
	raw, err := newRawMailer()
	if err != nil {
		return nil, err
	}
	defer raw.close()
	dispatchKinds := []string{jobs.DispatchArgs{}.Kind(), jobs.DispatchBatchArgs{}.Kind()}

	ResetPeakRSS()
	samples, err := r.measure(ctx,
		func(context.Context) (float64, error) {
			if err := raw.begin(); err != nil {
				return 0, err
			}
			start := time.Now()
			for i := range n {
				if err := raw.send(fmt.Sprintf("c-%08d@example.com", i)); err != nil {
					return 0, err
				}
			}
			return float64(n) / time.Since(start).Seconds(), nil
		},
		func(ctx context.Context, run int) (float64, map[string]float64, error) {
			// Queue the campaign, untimed.
			if err := e.app.River.QueuePause(ctx, jobs.QueueEmail, nil); err != nil {
				return 0, nil, fmt.Errorf("pause email queue: %w", err)
			}
			if err := ResetFirings(ctx, e.pool); err != nil {
				return 0, nil, err
			}
			tick := now.Add(time.Duration(run+1) * 25 * time.Hour) // past the cooldown of the run before
			if _, err := e.app.River.Insert(ctx, jobs.SweepArgs{Tick: tick, Rules: []string{"campaign"}}, nil); err != nil {
				return 0, nil, fmt.Errorf("insert sweep: %w", err)
			}
			if err := waitJobs(ctx, e.app.River, r.sizes.drainTimeout, jobs.SweepArgs{}.Kind(), jobs.SweepShardArgs{}.Kind()); err != nil {
				return 0, nil, err
			}
			queued, err := e.count(ctx, "deliveries")
			if err != nil {
				return 0, nil, err
			}
			if queued != n {
				return 0, nil, fmt.Errorf("the campaign queued %d emails, want %d", queued, n)
			}
			before := e.smtp.Count()
			start := time.Now()
			if err := e.app.River.QueueResume(ctx, jobs.QueueEmail, nil); err != nil {
				return 0, nil, fmt.Errorf("resume email queue: %w", err)
			}
			wctx, cancel := context.WithTimeout(ctx, r.sizes.drainTimeout)
			defer cancel()
			if err := e.smtp.WaitCount(wctx, before+n); err != nil {
				return 0, nil, err
			}
			if err := waitJobs(ctx, e.app.River, r.sizes.drainTimeout, dispatchKinds...); err != nil {
				return 0, nil, err
			}
			return float64(n) / time.Since(start).Seconds(), map[string]float64{"emails": float64(n)}, nil
		})
	if err != nil {
		return nil, err
	}
	return []Row{r.finish(Row{Name: "dispatch/campaign", Size: fmt.Sprintf("%d emails, frequency cap on", n),
		Unit: "emails/s", Baseline: "raw go-mail emails/s, one reused connection"}, samples, false, 0.5)}, nil
}
