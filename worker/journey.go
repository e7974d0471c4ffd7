package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// Reasons a run ends early (journey_runs.exit_reason).
const (
	ExitReasonEvent       = "exit event"
	ExitReasonStep        = "exit step"
	ExitReasonRuleRemoved = "rule removed from the rules file"
	ExitReasonError       = "step failed"
)

// journeys runs journey steps: starting runs for events, advancing them on
// awaited events and at the end of their waits. All of a step's effects
// (firing through Store.Fire, the run's new position, the job of its next
// wait) are written in the caller's transaction.
type journeys struct {
	rules  *rules.Holder
	logger *slog.Logger

	mu       sync.Mutex
	versions map[string]*rules.RuleSet // older rule-set versions runs are on
	saved    map[string]bool           // versions whose source is stored
}

func newJourneys(h *rules.Holder, logger *slog.Logger) *journeys {
	return &journeys{rules: h, logger: logger, versions: map[string]*rules.RuleSet{}, saved: map[string]bool{}}
}

// hasJourneys reports whether any rule of rs is a journey.
func hasJourneys(rs *rules.RuleSet) bool {
	return slices.ContainsFunc(rs.Rules, (*rules.Rule).IsJourney)
}

// rule returns the rule a run follows: the rule of the version the run
// started on, as long as the rule is still in the rules file in force
// (the reload policy, see README "Journeys"). nil with a reason when the
// run must stop.
func (j *journeys) rule(ctx context.Context, st *store.Store, cur *rules.RuleSet, run *store.JourneyRun) (*rules.Rule, string) {
	if cur.Rule(run.Rule) == nil {
		return nil, ExitReasonRuleRemoved
	}
	if run.RuleSetVersion == cur.Version {
		return cur.Rule(run.Rule), ""
	}
	j.mu.Lock()
	rs := j.versions[run.RuleSetVersion]
	j.mu.Unlock()
	if rs == nil {
		src, err := st.RuleSetSource(ctx, run.RuleSetVersion)
		if err != nil || src == nil {
			return nil, "rule-set version " + run.RuleSetVersion + " not stored"
		}
		rs, err = rules.Parse("version "+run.RuleSetVersion, src, rules.ParseOptions{LookupEnv: os.LookupEnv, AllowMissingEnv: true})
		if err != nil {
			return nil, "rule-set version " + run.RuleSetVersion + " no longer loads: " + err.Error()
		}
		j.mu.Lock()
		j.versions[run.RuleSetVersion] = rs
		j.mu.Unlock()
	}
	r := rs.Rule(run.Rule)
	if r == nil || !r.IsJourney() {
		return nil, "rule not in version " + run.RuleSetVersion
	}
	return r, ""
}

// saveVersion stores the rule set's file once per process, so runs started
// on it can go on after a reload.
func (j *journeys) saveVersion(ctx context.Context, st *store.Store, rs *rules.RuleSet) error {
	j.mu.Lock()
	done := j.saved[rs.Version]
	j.mu.Unlock()
	if done {
		return nil
	}
	if err := st.SaveRuleSetSource(ctx, rs.Version, rs.Source); err != nil {
		return err
	}
	j.mu.Lock()
	j.saved[rs.Version] = true
	j.mu.Unlock()
	return nil
}

// step is a run to advance with the rule it follows.
type step struct {
	run  *store.JourneyRun
	rule *rules.Rule
	// cust is the customer's facts, loaded when a step needs them.
	cust *store.Customer
	// resume says how a run waiting at a wait_for goes on: true for the
	// awaited event (pc+1), false for the timeout (the branch).
	byEvent bool
}

// advanceResult is what advancing runs produced for the caller's
// transaction: deliveries to dispatch and step jobs to schedule.
type advanceResult struct {
	deliveries []*store.Delivery
	jobs       []river.InsertManyParams
}

// advance runs each run's steps from its position until its next wait or
// its end, and writes it all: steps (unique per run and step), the
// firings of their actions (Store.Fire), the runs' new positions. It
// returns the deliveries to dispatch and the jobs of the next waits.
func (j *journeys) advance(ctx context.Context, st *store.Store, fr *firer, steps []*step, now time.Time) (*advanceResult, error) {
	var recs []*store.JourneyStep
	type segment struct {
		s       *step
		seq     int
		actions []int // action indexes
		pcs     []int
	}
	var segs []*segment
	for _, s := range steps {
		run, r := s.run, s.rule
		instrs := r.Journey.Instrs
		if run.State == store.RunWaitingEvent {
			if in := instrs[run.PC]; in.Op == rules.OpWaitFor {
				if s.byEvent {
					run.PC++
				} else {
					run.PC = in.Target
				}
			}
		}
		run.State, run.WaitEvent, run.NextStepAt = store.RunRunning, "", time.Time{}
		seg := &segment{s: s, seq: run.Seq}
		segs = append(segs, seg)
		for run.State == store.RunRunning {
			if run.PC >= len(instrs) {
				run.State, run.EndedAt = store.RunDone, now
				break
			}
			in := instrs[run.PC]
			rec := &store.JourneyStep{CustomerID: run.CustomerID, RunID: run.ID, PC: run.PC, Seq: run.Seq, Step: in.Describe(r), ExecutedAt: now}
			switch in.Op {
			case rules.OpAction:
				recs = append(recs, rec)
				seg.actions, seg.pcs = append(seg.actions, in.ActionIndex), append(seg.pcs, run.PC)
				run.PC++
			case rules.OpJump:
				run.PC = in.Target
			case rules.OpJumpUnless:
				c, err := j.customer(ctx, st, s)
				if err != nil {
					return nil, err
				}
				ok, err := r.Holds(run.PC, rules.Input{Customer: store.RuleCustomer(c), Now: now, Run: rules.Run{Key: run.Key}})
				if err != nil {
					j.logger.WarnContext(ctx, "journey: if failed at run time; taking else", slog.String("rule", r.Name),
						slog.Int64("run_id", run.ID), slog.String("error", err.Error()))
				}
				if ok {
					run.PC++
				} else {
					run.PC = in.Target
				}
			case rules.OpExit:
				recs = append(recs, rec)
				run.State, run.EndedAt, run.ExitReason = store.RunExited, now, ExitReasonStep
			case rules.OpWait, rules.OpWaitUntil, rules.OpWaitFor:
				recs = append(recs, rec)
				run.State, run.NextStepAt = store.RunWaiting, now.Add(in.Wait)
				switch in.Op {
				case rules.OpWait:
					run.PC++
				case rules.OpWaitUntil:
					c, err := j.customer(ctx, st, s)
					if err != nil {
						return nil, err
					}
					run.NextStepAt = in.NextLocal(now, c.Timezone, r.Location)
					run.PC++
				case rules.OpWaitFor:
					run.State, run.WaitEvent = store.RunWaitingEvent, in.Event
				}
				run.Seq++
			}
		}
	}
	fresh, err := st.InsertJourneySteps(ctx, recs)
	if err != nil {
		return nil, err
	}
	// Firings: one per run segment (occurrence run:<id>:<seq>); a rule
	// fires once per customer per Store.Fire call, so a customer in two
	// runs of one rule here goes into a second call.
	var batches [][]*store.Fire
	for _, seg := range segs {
		var idx []int
		for i, a := range seg.actions {
			if fresh[[2]int64{seg.s.run.ID, int64(seg.pcs[i])}] {
				idx = append(idx, a)
			}
		}
		if len(idx) == 0 {
			continue
		}
		run := seg.s.run
		f, err := fr.fireActions(seg.s.rule, run.RuleSetVersion, run.CustomerID, "run:"+strconv.FormatInt(run.ID, 10)+":"+strconv.Itoa(seg.seq), idx, now)
		if err != nil {
			return nil, err
		}
		placed := false
		for i, b := range batches {
			if !slices.ContainsFunc(b, func(o *store.Fire) bool {
				return o.Firing.CustomerID == f.Firing.CustomerID && o.Firing.Rule == f.Firing.Rule
			}) {
				batches[i], placed = append(b, f), true
				break
			}
		}
		if !placed {
			batches = append(batches, []*store.Fire{f})
		}
	}
	res := &advanceResult{}
	for _, b := range batches {
		if res.deliveries, err = fr.write(ctx, st, b, res.deliveries); err != nil {
			return nil, fmt.Errorf("fire %d journey steps: %w", len(b), err)
		}
	}
	runs := make([]*store.JourneyRun, len(steps))
	for i, s := range steps {
		runs[i] = s.run
	}
	if err := st.UpdateJourneyRuns(ctx, runs); err != nil {
		return nil, err
	}
	res.jobs = stepJobs(runs)
	return res, nil
}

// customer loads the run's customer facts once.
func (j *journeys) customer(ctx context.Context, st *store.Store, s *step) (*store.Customer, error) {
	if s.cust == nil {
		c, err := st.GetCustomer(ctx, s.run.CustomerID)
		if err != nil {
			return nil, err
		}
		s.cust = c
	}
	return s.cust, nil
}

// stepJobs are the jobs that resume waiting runs: one per instant and
// jobs.JourneyStepBatchSize runs, scheduled at the instant.
func stepJobs(runs []*store.JourneyRun) []river.InsertManyParams {
	byTime := map[time.Time][]jobs.JourneyRunRef{}
	var order []time.Time
	for _, r := range runs {
		if r.State != store.RunWaiting && r.State != store.RunWaitingEvent {
			continue
		}
		t := r.NextStepAt
		if _, ok := byTime[t]; !ok {
			order = append(order, t)
		}
		byTime[t] = append(byTime[t], jobs.JourneyRunRef{CustomerID: r.CustomerID, RunID: r.ID, Seq: r.Seq})
	}
	var out []river.InsertManyParams
	for _, t := range order {
		for refs := range slices.Chunk(byTime[t], jobs.JourneyStepBatchSize) {
			out = append(out, river.InsertManyParams{Args: jobs.JourneyStepArgs{Runs: refs},
				InsertOpts: &river.InsertOpts{Queue: jobs.QueueJourney, ScheduledAt: t}})
		}
	}
	return out
}

// onEvent applies one event of a customer to the customer's active runs
// (the caller holds the customer's row lock): a run whose exit holds ends;
// a run waiting for the event type whose `when` holds, for an event that
// arrived after the run started and for the same key, goes on. Then it
// starts the runs of the journey rules the event matched. It returns the
// runs to advance now.
func (j *journeys) onEvent(ctx context.Context, st *store.Store, rs *rules.RuleSet, active []*store.JourneyRun,
	cust *store.Customer, ev *store.PendingEvent, started []*rules.Rule, now time.Time,
) ([]*step, []*store.JourneyRun, error) {
	var steps []*step
	var ended []*store.JourneyRun
	rev := ruleEvent(&ev.Event)
	for _, run := range active {
		if !run.Active() || ev.ID <= run.StartEventID {
			continue
		}
		r, reason := j.rule(ctx, st, rs, run)
		if r == nil {
			run.State, run.EndedAt, run.ExitReason = store.RunStopped, now, reason
			ended = append(ended, run)
			continue
		}
		in := rules.Input{Customer: store.RuleCustomer(cust), Event: rev, Now: now, Run: rules.Run{Key: run.Key}}
		exit, err := r.Exits(in)
		if err != nil {
			j.logger.WarnContext(ctx, "journey: exit failed at run time", slog.String("rule", r.Name),
				slog.Int64("run_id", run.ID), slog.String("error", err.Error()))
		}
		if exit {
			run.State, run.EndedAt, run.ExitReason = store.RunExited, now, ExitReasonEvent+" "+ev.Type+" #"+strconv.FormatInt(ev.ID, 10)
			ended = append(ended, run)
			continue
		}
		if run.State != store.RunWaitingEvent || run.WaitEvent != ev.Type {
			continue
		}
		if k, err := r.RunKey(in); err == nil && k != "" && k != run.Key {
			continue // another checkout's event
		}
		ok, err := r.Holds(run.PC, in)
		if err != nil {
			j.logger.WarnContext(ctx, "journey: wait_for when failed at run time", slog.String("rule", r.Name),
				slog.Int64("run_id", run.ID), slog.String("error", err.Error()))
		}
		if ok {
			run.Seq++ // the timeout job is stale now
			steps = append(steps, &step{run: run, rule: r, cust: cust, byEvent: true})
		}
	}
	if len(started) > 0 {
		if err := j.saveVersion(ctx, st, rs); err != nil {
			return nil, nil, err
		}
	}
	for _, r := range started {
		in := rules.Input{Customer: store.RuleCustomer(cust), Event: rev, Now: now}
		key, err := r.RunKey(in)
		if err != nil {
			j.logger.WarnContext(ctx, "journey: key failed at run time; not started", slog.String("rule", r.Name),
				slog.String("customer_id", cust.ID), slog.String("error", err.Error()))
			continue
		}
		run := &store.JourneyRun{CustomerID: cust.ID, Rule: r.Name, Key: key, RuleSetVersion: rs.Version,
			StartEventID: ev.ID, StartedAt: now}
		ok, err := st.StartJourneyRun(ctx, run, r.Journey.Reentry == rules.ReentryAllow, r.Journey.ReentryCooldown)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			steps = append(steps, &step{run: run, rule: r, cust: cust})
		}
	}
	return steps, ended, nil
}

// JourneyStepWorker resumes runs at the end of their waits.
type JourneyStepWorker struct {
	river.WorkerDefaults[jobs.JourneyStepArgs]

	pool     *pgxpool.Pool
	journeys *journeys
	now      Clock
}

// Work locks the job's customers and runs (those still at the seq the job
// names), advances them and writes it all, with the next waits' jobs, in
// one transaction: a job run twice or after a crash repeats no step.
func (w *JourneyStepWorker) Work(ctx context.Context, job *river.Job[jobs.JourneyStepArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		return w.journeys.resume(ctx, tx, client, journeyRefs(job.Args), w.now())
	})
}

// resume advances the runs refs (those still at their seq) in tx.
func (j *journeys) resume(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], refs []store.RunRef, now time.Time) error {
	rs := j.rules.Load()
	{
		st := store.New(tx)
		runs, err := st.LockJourneyRuns(ctx, refs)
		if err != nil {
			return err
		}
		var steps []*step
		var ended []*store.JourneyRun
		for _, run := range runs {
			if run.State != store.RunWaiting && run.State != store.RunWaitingEvent {
				continue
			}
			r, reason := j.rule(ctx, st, rs, run)
			if r == nil {
				run.State, run.EndedAt, run.ExitReason = store.RunStopped, now, reason
				ended = append(ended, run)
				continue
			}
			steps = append(steps, &step{run: run, rule: r})
		}
		if err := st.UpdateJourneyRuns(ctx, ended); err != nil {
			return err
		}
		res, err := j.advance(ctx, st, newFirer(rs.Version), steps, now)
		if err != nil {
			return err
		}
		return res.insert(ctx, tx, client)
	}
}

// insert enqueues the result's dispatch and step jobs in tx.
func (res *advanceResult) insert(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx]) error {
	if err := insertDispatchJobs(ctx, tx, client, res.deliveries, len(res.deliveries) > 100); err != nil {
		return err
	}
	if len(res.jobs) == 0 {
		return nil
	}
	if _, err := client.InsertManyTx(ctx, tx, res.jobs); err != nil {
		return fmt.Errorf("schedule %d journey steps: %w", len(res.jobs), err)
	}
	return nil
}
