package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Journey run states (JourneyRun.State).
const (
	RunRunning      = "running"
	RunWaiting      = "waiting"
	RunWaitingEvent = "waiting_event"
	RunDone         = "done"
	RunExited       = "exited"
	RunStopped      = "stopped"
)

// JourneyRun is one customer's run of a journey rule for one key.
type JourneyRun struct {
	ID             int64
	CustomerID     string
	Rule           string
	Key            string
	RuleSetVersion string
	// PC is the next step (instruction) to run.
	PC int
	// Seq counts the waits the run has passed; a step job resumes one seq.
	Seq   int
	State string
	// WaitEvent is the event type a waiting_event run waits for.
	WaitEvent string
	// NextStepAt is when a waiting run goes on (a wait_for's timeout).
	NextStepAt time.Time
	StartedAt  time.Time
	// StartEventID is the event that started the run.
	StartEventID int64
	// EndedAt and ExitReason are set once the run ended.
	EndedAt    time.Time
	ExitReason string
	// Step is the last step executed (CustomerJourneyRuns only).
	Step string
}

// Active reports whether the run has not ended.
func (r *JourneyRun) Active() bool {
	return r.State != RunDone && r.State != RunExited && r.State != RunStopped
}

// JourneyStep is one executed step of a run.
type JourneyStep struct {
	CustomerID string
	RunID      int64
	PC, Seq    int
	Step       string
	ExecutedAt time.Time
}

// SaveRuleSetSource keeps the file of a rule-set version (once).
func (s *Store) SaveRuleSetSource(ctx context.Context, version string, source []byte) error {
	if _, err := s.db.Exec(ctx, q("SaveRuleSetSource"), version, source); err != nil {
		return fmt.Errorf("save rule set %s: %w", version, err)
	}
	return nil
}

// RuleSetSource returns the file of a rule-set version; ErrNotFound-like
// nil, nil when it was never saved.
func (s *Store) RuleSetSource(ctx context.Context, version string) ([]byte, error) {
	var src []byte
	err := s.db.QueryRow(ctx, q("RuleSetSource"), version).Scan(&src)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rule set %s: %w", version, err)
	}
	return src, nil
}

// StartJourneyRun inserts run (state running) and sets its ID, unless the
// customer has an active run of the rule for the key (without allow), the
// start event already started one, or one started within cooldown: then
// it returns false.
func (s *Store) StartJourneyRun(ctx context.Context, run *JourneyRun, allow bool, cooldown time.Duration) (bool, error) {
	var ev *int64
	if run.StartEventID != 0 {
		ev = &run.StartEventID
	}
	err := s.db.QueryRow(ctx, q("StartJourneyRun"), run.CustomerID, run.Rule, run.Key, run.RuleSetVersion,
		allow, ev, run.StartedAt, cooldown.Milliseconds()).Scan(&run.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("start run of %q for %q: %w", run.Rule, run.CustomerID, err)
	}
	run.State = RunRunning
	return true, nil
}

// RunRef names a run at a seq (a step job's target).
type RunRef struct {
	CustomerID string
	ID         int64
	Seq        int
}

// LockJourneyRuns locks the customers of refs, then the runs still at
// their seq and active, and returns those (others are stale: done,
// exited, or advanced already by an event or an earlier try).
func (s *Store) LockJourneyRuns(ctx context.Context, refs []RunRef) ([]*JourneyRun, error) {
	cs, ids, seqs := make([]string, len(refs)), make([]int64, len(refs)), make([]int32, len(refs))
	for i, r := range refs {
		cs[i], ids[i], seqs[i] = r.CustomerID, r.ID, int32(r.Seq)
	}
	rows, err := s.db.Query(ctx, q("LockJourneyRuns"), cs, ids, seqs)
	if err != nil {
		return nil, fmt.Errorf("lock %d runs: %w", len(refs), err)
	}
	return scanRuns(rows)
}

// ActiveJourneyRuns returns a customer's active runs; hold its row lock.
func (s *Store) ActiveJourneyRuns(ctx context.Context, customerID string) ([]*JourneyRun, error) {
	rows, err := s.db.Query(ctx, q("ActiveJourneyRuns"), customerID)
	if err != nil {
		return nil, fmt.Errorf("active runs of %q: %w", customerID, err)
	}
	return scanRuns(rows)
}

func scanRuns(rows pgx.Rows) ([]*JourneyRun, error) {
	defer rows.Close()
	var out []*JourneyRun
	for rows.Next() {
		r := &JourneyRun{}
		if err := rows.Scan(&r.ID, &r.CustomerID, &r.Rule, &r.Key, &r.RuleSetVersion, &r.PC, &r.Seq, &r.State,
			&r.WaitEvent, &r.NextStepAt, &r.StartedAt, &r.StartEventID); err != nil {
			return nil, fmt.Errorf("scan run: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan runs: %w", err)
	}
	return out, nil
}

// UpdateJourneyRuns writes the runs' positions and states in one statement.
func (s *Store) UpdateJourneyRuns(ctx context.Context, runs []*JourneyRun) error {
	if len(runs) == 0 {
		return nil
	}
	n := len(runs)
	cs, ids, pcs, seqs := make([]string, n), make([]int64, n), make([]int32, n), make([]int32, n)
	states, evs, reasons := make([]string, n), make([]string, n), make([]string, n)
	next, ended := make([]*time.Time, n), make([]*time.Time, n)
	for i, r := range runs {
		cs[i], ids[i], pcs[i], seqs[i], states[i], evs[i], reasons[i] = r.CustomerID, r.ID, int32(r.PC), int32(r.Seq), r.State, r.WaitEvent, r.ExitReason
		if !r.NextStepAt.IsZero() && (r.State == RunWaiting || r.State == RunWaitingEvent) {
			t := r.NextStepAt
			next[i] = &t
		}
		if !r.EndedAt.IsZero() {
			t := r.EndedAt
			ended[i] = &t
		}
	}
	if _, err := s.db.Exec(ctx, q("UpdateJourneyRuns"), cs, ids, pcs, seqs, states, evs, next, ended, reasons); err != nil {
		return fmt.Errorf("update %d runs: %w", n, err)
	}
	return nil
}

// InsertJourneySteps records executed steps and returns, per run id, the
// steps (pcs) that were new; a step recorded before (a repeated job) is
// left out, and its effects must not be applied again.
func (s *Store) InsertJourneySteps(ctx context.Context, steps []*JourneyStep) (map[[2]int64]bool, error) {
	if len(steps) == 0 {
		return nil, nil
	}
	n := len(steps)
	cs, ids, pcs, seqs, names, at := make([]string, n), make([]int64, n), make([]int32, n), make([]int32, n), make([]string, n), make([]time.Time, n)
	for i, st := range steps {
		cs[i], ids[i], pcs[i], seqs[i], names[i], at[i] = st.CustomerID, st.RunID, int32(st.PC), int32(st.Seq), st.Step, st.ExecutedAt
	}
	rows, err := s.db.Query(ctx, q("InsertJourneySteps"), cs, ids, pcs, seqs, names, at)
	if err != nil {
		return nil, fmt.Errorf("record %d steps: %w", n, err)
	}
	defer rows.Close()
	out := map[[2]int64]bool{}
	for rows.Next() {
		var id int64
		var pc int32
		if err := rows.Scan(&id, &pc); err != nil {
			return nil, fmt.Errorf("record steps: %w", err)
		}
		out[[2]int64{id, int64(pc)}] = true
	}
	return out, rows.Err()
}

// CustomerJourneyRuns lists a customer's latest runs, newest first, with
// their last executed step.
func (s *Store) CustomerJourneyRuns(ctx context.Context, customerID string, limit int) ([]*JourneyRun, error) {
	rows, err := s.db.Query(ctx, q("CustomerJourneyRuns"), customerID, limit)
	if err != nil {
		return nil, fmt.Errorf("runs of %q: %w", customerID, err)
	}
	defer rows.Close()
	var out []*JourneyRun
	for rows.Next() {
		r := &JourneyRun{CustomerID: customerID}
		var next, ended *time.Time
		if err := rows.Scan(&r.ID, &r.Rule, &r.Key, &r.RuleSetVersion, &r.PC, &r.State, &r.WaitEvent,
			&next, &r.StartedAt, &ended, &r.ExitReason, &r.Step); err != nil {
			return nil, fmt.Errorf("runs of %q: %w", customerID, err)
		}
		if next != nil {
			r.NextStepAt = *next
		}
		if ended != nil {
			r.EndedAt = *ended
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
