package dryrun

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// DiffRow is how many customers one changed rule matches before and after.
type DiffRow struct {
	rules.RuleChange
	// Before and After count the customers the old and new rule match
	// (0 for an added or removed rule's missing side).
	Before, After int
	// ErrorsBefore and ErrorsAfter count customers whose condition failed
	// at run time (e.g. a missing event property compared with a number).
	ErrorsBefore, ErrorsAfter int
}

// DiffReport is the outcome of Diff.
type DiffReport struct {
	Rows []*DiffRow
	// Customers is how many customers were evaluated.
	Customers int
	// Sample is the requested sample size; 0 means every customer.
	Sample int
}

// Diff evaluates every added, removed or changed rule of old → next against
// every customer (or a random sample of sample customers), streaming them
// in a read-only transaction, and counts matches on each side. Scheduled
// rules are evaluated as a sweep at `at` would; event rules on the
// customer's current facts with an empty event of their type.
func Diff(ctx context.Context, pool *pgxpool.Pool, old, next *rules.RuleSet, sample int, at time.Time) (*DiffReport, error) {
	rep := &DiffReport{Sample: sample}
	for _, c := range rules.Diff(old, next) {
		rep.Rows = append(rep.Rows, &DiffRow{RuleChange: c})
	}
	if len(rep.Rows) == 0 {
		return rep, nil
	}
	count := func(r *rules.Rule, in rules.Input, matches, errs *int) {
		if r == nil {
			return
		}
		if r.On != "" {
			in.Event = &rules.Event{Type: r.On}
		}
		ok, err := r.Match(in)
		switch {
		case err != nil:
			*errs++
		case ok:
			*matches++
		}
	}
	err := ReadOnly(ctx, pool, func(st *store.Store) error {
		return st.EachCustomer(ctx, sample, func(c *store.Customer) error {
			rep.Customers++
			in := rules.Input{Customer: store.RuleCustomer(c), Now: at}
			for _, row := range rep.Rows {
				count(row.Old, in, &row.Before, &row.ErrorsBefore)
				count(row.New, in, &row.After, &row.ErrorsAfter)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}
