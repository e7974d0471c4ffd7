package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// EvaluateWorker runs the event rules matching ingested events.
//
// One customer's events are evaluated one at a time and in order: the job
// locks the customer's row and evaluates every pending event of that
// customer up to its own, oldest first. Each event's rules see the
// customer's facts as of that event (orders_count of the first order is 1
// even when three orders arrive at once) and the stage as the earlier
// events' rules left it. A job whose event was already evaluated by an
// earlier job does nothing.
type EvaluateWorker struct {
	river.WorkerDefaults[jobs.EvaluateArgs]

	pool     *pgxpool.Pool
	rules    *rules.Holder
	now      Clock
	logger   *slog.Logger
	journeys *journeys
}

// evalRuns is the journey state of one evaluate job: the customer's active
// runs and the step jobs to schedule.
type evalRuns struct {
	active []*store.JourneyRun
	jobs   []river.InsertManyParams
}

// Work evaluates the customer's pending events up to job.Args.EventID. A
// rule whose `when` fails at run time is logged, recorded in rule_skips and
// skipped so that the other rules still run; everything else commits or
// retries as one.
func (w *EvaluateWorker) Work(ctx context.Context, job *river.Job[jobs.EvaluateArgs]) error {
	rs := w.rules.Load()
	client := river.ClientFromContext[pgx.Tx](ctx)
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		st := store.New(tx)
		now := w.now()
		// Lock the customer and claim its pending events in one round trip;
		// the claim is undone with everything else if the job fails.
		//
		// The commit need not wait for the WAL flush (the events it reads
		// were committed durably at ingest): River's completion of this job
		// is a later synchronous commit, so a crash either keeps both or
		// loses both and the job runs again, firing once; and a dispatch job
		// inserted here is fetched by a synchronous commit too, so no email
		// leaves before this transaction is on disk.
		stage, pending, err := st.ClaimForEvaluation(ctx, job.Args.CustomerID, job.Args.EventID, now, true)
		if errors.Is(err, store.ErrCustomerNotFound) {
			return river.JobCancel(err)
		}
		if err != nil || len(pending) == 0 {
			return err
		}
		fr := newFirer(rs.Version)
		// The tier first, so that the events' rules read it current; a
		// change records a tier_changed event, evaluated after these.
		if changesFacts(pending) && len(rs.Tiers) > 0 {
			last := pending[len(pending)-1]
			page, err := st.RecomputeTiers(ctx, &store.TierRecompute{Tiers: rs.Tiers, CustomerIDs: []string{job.Args.CustomerID},
				Now: now, Reason: store.EventTierReason(last.Type, last.ID), RuleSetVersion: rs.Version})
			if err != nil {
				return err
			}
			fr.events = append(fr.events, store.TierEvents(page.Changes)...)
		}
		var deliveries []*store.Delivery
		var runs *evalRuns
		if w.journeys != nil && hasJourneys(rs) {
			active, err := st.ActiveJourneyRuns(ctx, job.Args.CustomerID)
			if err != nil {
				return err
			}
			runs = &evalRuns{active: active}
		}
		for _, ev := range pending {
			facts := ev.Facts
			if facts == nil { // events stored before snapshots existed
				if facts, err = st.GetCustomer(ctx, ev.CustomerID); err != nil {
					return err
				}
			}
			cust := *facts
			cust.Stage = stage
			// A refund takes back the order's points before its rules run.
			spent, err := reverseOrderPoints(ctx, st, &ev.Event, now)
			if err != nil {
				return err
			}
			fr.events = append(fr.events, spent...)
			if rs.ReadsPoints() {
				p, err := st.PointsSummary(ctx, cust.ID, now)
				if err != nil {
					return err
				}
				cust.PointsBalance, cust.PointsPending, cust.PointsExpiringAt, cust.Tier = p.Balance, p.Pending, p.NextExpiry, p.Tier
			}
			if stage, deliveries, err = w.evaluate(ctx, st, fr, rs, &cust, ev, now, deliveries, runs); err != nil {
				return err
			}
		}
		if err := insertDispatchJobs(ctx, tx, client, deliveries, false); err != nil {
			return fmt.Errorf("enqueue dispatch for %q: %w", job.Args.CustomerID, err)
		}
		if runs != nil && len(runs.jobs) > 0 {
			if _, err := client.InsertManyTx(ctx, tx, runs.jobs); err != nil {
				return fmt.Errorf("schedule journey steps for %q: %w", job.Args.CustomerID, err)
			}
		}
		return fr.insertEvaluateJobs(ctx, tx, client)
	})
}

// evaluate fires the rules matching one event, all in one statement, and
// returns the stage the customer is in afterwards, and deliveries with the
// firings' deliveries appended (their dispatch jobs are enqueued together at
// the end).
func (w *EvaluateWorker) evaluate(ctx context.Context, st *store.Store, fr *firer, rs *rules.RuleSet,
	cust *store.Customer, ev *store.PendingEvent, now time.Time, deliveries []*store.Delivery, runs *evalRuns,
) (string, []*store.Delivery, error) {
	in := rules.Input{Customer: store.RuleCustomer(cust), Event: ruleEvent(&ev.Event), Now: now}
	var fires []*store.Fire
	var starts []*rules.Rule
	for _, r := range rs.ForEvent(ev.Type) {
		ok, err := r.Match(in)
		metrics.FromContext(ctx).RuleEvaluated(r.Name, ok, err)
		if err == nil && ok && r.IsJourney() {
			starts = append(starts, r)
			continue
		}
		var f *store.Fire
		if err == nil && ok {
			var pe *pointsAmountError
			if f, err = fr.fire(r, cust, &in, rules.Occurrence(r, ev.ID, now), ev.ID, now); err != nil && !errors.As(err, &pe) {
				return "", nil, err
			}
		}
		if err != nil {
			w.logger.WarnContext(ctx, "evaluate: rule failed at run time; skipped",
				slog.String("rule", r.Name), slog.String("customer_id", cust.ID), slog.String("error", err.Error()))
			// Recorded with the evaluation, so `ciclo customer` shows it.
			if err := st.InsertRuleSkip(ctx, &store.RuleSkip{CustomerID: cust.ID, Rule: r.Name,
				RuleSetVersion: rs.Version, EventID: ev.ID, Error: err.Error(), SkippedAt: now}); err != nil {
				return "", nil, err
			}
			continue
		}
		if !ok {
			continue
		}
		fires = append(fires, f)
	}
	deliveries, err := fr.write(ctx, st, fires, deliveries)
	if err != nil {
		return "", nil, fmt.Errorf("fire %d rules for %q: %w", len(fires), cust.ID, err)
	}
	if runs != nil {
		if deliveries, err = w.journeyEvent(ctx, st, fr, rs, cust, ev, now, deliveries, runs, starts); err != nil {
			return "", nil, err
		}
	}
	stage := cust.Stage
	for _, f := range fires {
		if !f.Fired {
			continue
		}
		if n := len(f.Transitions); n > 0 {
			stage = f.Transitions[n-1].To
		}
		w.logger.InfoContext(ctx, "evaluate: rule fired", slog.String("rule", f.Firing.Rule),
			slog.String("customer_id", cust.ID), slog.Int64("firing_id", f.Firing.ID),
			slog.String("rule_set_version", rs.Version))
	}
	return stage, deliveries, nil
}

// journeyEvent applies an event to the customer's runs and starts the
// runs of the journeys it matched (see journeys.onEvent), advancing them at
// once, in the evaluation's transaction.
func (w *EvaluateWorker) journeyEvent(ctx context.Context, st *store.Store, fr *firer, rs *rules.RuleSet,
	cust *store.Customer, ev *store.PendingEvent, now time.Time, deliveries []*store.Delivery, runs *evalRuns, starts []*rules.Rule,
) ([]*store.Delivery, error) {
	steps, ended, err := w.journeys.onEvent(ctx, st, rs, runs.active, cust, ev, starts, now)
	if err != nil {
		return nil, err
	}
	if err := st.UpdateJourneyRuns(ctx, ended); err != nil {
		return nil, err
	}
	res, err := w.journeys.advance(ctx, st, fr, steps, now)
	if err != nil {
		return nil, err
	}
	for _, s := range steps {
		if s.run.StartEventID == ev.ID && s.run.Active() {
			runs.active = append(runs.active, s.run)
		}
	}
	runs.jobs = append(runs.jobs, res.jobs...)
	return append(deliveries, res.deliveries...), nil
}

// changesFacts reports whether any of the events may change what tiers
// are derived from (spend, points): all but tier changes and reminders.
func changesFacts(evs []*store.PendingEvent) bool {
	for _, e := range evs {
		if e.Type != store.EventTierChanged && e.Type != store.EventPointsExpiring {
			return true
		}
	}
	return false
}
