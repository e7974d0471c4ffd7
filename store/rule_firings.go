package store

import (
	"context"
	"fmt"
	"time"
)

// Firing is one rule firing for one customer and occurrence.
type Firing struct {
	ID             int64
	CustomerID     string
	Rule           string
	Occurrence     string // "event:<id>" or a cooldown window key; unique per customer and rule
	RuleSetVersion string
	EventID        int64 // 0 for scheduled firings
	FiredAt        time.Time
	// Cooldown, if set, also refuses the firing when the rule fired for the
	// customer less than Cooldown before FiredAt (whatever the occurrence),
	// so a window boundary cannot let it fire twice in quick succession.
	Cooldown time.Duration
}

// InsertFiring records f and sets f.ID. It reports false, and writes
// nothing, when the rule already fired for this customer and occurrence
// (the guard that keeps retries and concurrent workers from firing twice),
// or within f.Cooldown before f.FiredAt. Hold the customer's row lock for
// the cooldown check to be race-free.
func (s *Store) InsertFiring(ctx context.Context, f *Firing) (bool, error) {
	var eventID *int64
	if f.EventID != 0 {
		eventID = &f.EventID
	}
	rows, err := s.db.Query(ctx, q("InsertFiring"), f.CustomerID, f.Rule, f.Occurrence, f.RuleSetVersion, eventID, f.FiredAt, f.Cooldown.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("insert firing of %q: %w", f.Rule, err)
	}
	defer rows.Close()
	inserted := false
	for rows.Next() {
		if err := rows.Scan(&f.ID); err != nil {
			return false, fmt.Errorf("insert firing of %q: %w", f.Rule, err)
		}
		inserted = true
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("insert firing of %q: %w", f.Rule, err)
	}
	return inserted, nil
}
