package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
)

// tickMargin is how early River's periodic enqueuer may call a constructor
// before the scheduled instant (it uses 100 ms); the tick is the latest
// schedule instant up to now plus this margin.
const tickMargin = 500 * time.Millisecond

// PeriodicSweeps keeps a River client's periodic sweep jobs in step with the
// rule set: one periodic job per distinct (schedule, timezone) of the
// scheduled rules, so that rules due on the same tick share one pass over
// the customers. Every process registers them; only River's leader
// enqueues, and a sweep is unique per rules and tick, so a restart or a
// second leader never doubles it. Safe for concurrent use.
type PeriodicSweeps struct {
	client *river.Client[pgx.Tx]
	rules  *rules.Holder

	mu  sync.Mutex
	ids map[string]bool
}

// NewPeriodicSweeps returns a PeriodicSweeps for client with no periodic
// job registered yet; call Sync. At each tick the job reads the rule set in
// force from holder, so a rule edited or removed since Sync is swept as it
// is then.
func NewPeriodicSweeps(client *river.Client[pgx.Tx], holder *rules.Holder) *PeriodicSweeps {
	return &PeriodicSweeps{client: client, rules: holder, ids: map[string]bool{}}
}

// sweepJobID names the periodic job of a schedule group:
// "ciclo.sweep/<timezone>/<hash of the schedule>" (River allows few
// characters in an ID, and no spaces or stars).
func sweepJobID(r *rules.Rule) string {
	tz := r.Timezone
	if tz == "" {
		tz = "UTC"
	}
	sum := sha256.Sum256([]byte(r.Schedule))
	return "ciclo.sweep/" + tz + "/" + hex.EncodeToString(sum[:6])
}

// Sync makes the registered periodic sweeps those of rs: it adds a job for
// each new (schedule, timezone) and removes those no rule uses any more.
// Call it at start and after each rules reload (after storing rs in the
// holder). It returns the periodic job IDs added and removed.
func (p *PeriodicSweeps) Sync(rs *rules.RuleSet) (added, removed []string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := map[string]*rules.Rule{}
	for _, r := range rs.Scheduled() {
		if r.CronSchedule() == nil {
			continue
		}
		if _, ok := want[sweepJobID(r)]; !ok {
			want[sweepJobID(r)] = r
		}
	}
	for id := range p.ids {
		if _, ok := want[id]; !ok {
			p.client.PeriodicJobs().RemoveByID(id)
			delete(p.ids, id)
			removed = append(removed, id)
		}
	}
	for id, r := range want {
		if p.ids[id] {
			continue
		}
		sched := r.CronSchedule()
		job := river.NewPeriodicJob(sched, p.constructor(id, sched), &river.PeriodicJobOpts{ID: id})
		if _, err := p.client.PeriodicJobs().AddSafely(job); err != nil {
			return added, removed, fmt.Errorf("add periodic sweep %q: %w", id, err)
		}
		p.ids[id] = true
		added = append(added, id)
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed, nil
}

// constructor builds the sweep of schedule group id at a tick, with the
// group's rules from the rule set then in force; none means no sweep.
func (p *PeriodicSweeps) constructor(id string, sched river.PeriodicSchedule) river.PeriodicJobConstructor {
	return func() (river.JobArgs, *river.InsertOpts) {
		var names []string
		for _, r := range p.rules.Load().Scheduled() {
			if sweepJobID(r) == id {
				names = append(names, r.Name)
			}
		}
		if len(names) == 0 {
			return nil, nil
		}
		return jobs.SweepArgs{Tick: LastTick(sched, time.Now()), Rules: names}, nil
	}
}

// LastTick returns the latest instant of sched at or before now (plus a
// small margin for an enqueuer that runs a little early), truncated to the
// second. It is what makes the sweeps of one tick identical in every
// process. With no instant in the past 400 days it returns now truncated.
func LastTick(sched river.PeriodicSchedule, now time.Time) time.Time {
	limit := now.Add(tickMargin)
	for back := time.Second; back <= 400*24*time.Hour; back *= 4 {
		t := sched.Next(now.Add(-back))
		if t.After(limit) {
			continue
		}
		for {
			next := sched.Next(t)
			if next.After(limit) || !next.After(t) {
				return t.Truncate(time.Second)
			}
			t = next
		}
	}
	return now.Truncate(time.Second)
}
