package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/rules"
)

// Errors of RunRuleNow.
var (
	ErrRuleNotFound     = errors.New("no such rule")
	ErrRuleNotScheduled = errors.New("rule is not scheduled")
)

// RunRuleNow enqueues the sweep of scheduled rule name at now, as its cron
// tick would (a one-off campaign without editing the schedule). The sweep
// is unique per rule and minute (its tick is now truncated to the minute),
// so a double click sends once: duplicate is then true and jobID the
// sweep already enqueued.
func RunRuleNow(ctx context.Context, client *river.Client[pgx.Tx], rs *rules.RuleSet, name string, now time.Time) (jobID int64, duplicate bool, err error) {
	r := rs.Rule(name)
	if r == nil {
		return 0, false, fmt.Errorf("run rule %q: %w", name, ErrRuleNotFound)
	}
	if r.Schedule == "" {
		return 0, false, fmt.Errorf("run rule %q (on: %s): %w", name, r.On, ErrRuleNotScheduled)
	}
	res, err := client.Insert(ctx, SweepArgs{Tick: now.UTC().Truncate(time.Minute), Rules: []string{name}}, nil)
	if err != nil {
		return 0, false, fmt.Errorf("run rule %q: enqueue sweep: %w", name, err)
	}
	return res.Job.ID, res.UniqueSkippedAsDuplicate, nil
}
