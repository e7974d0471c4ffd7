package store

import (
	"context"
	"fmt"
	"time"
)

// Transition is one logged stage change.
type Transition struct {
	CustomerID     string
	From           string // "" when the customer was just created
	To             string
	Rule           string // "" when no rule moved it (creation)
	RuleSetVersion string
	FiringID       int64
	OccurredAt     time.Time
}

// Transitions reads a customer's stage transitions, oldest first.
func (s *Store) Transitions(ctx context.Context, customerID string) ([]*Transition, error) {
	rows, err := s.db.Query(ctx, q("GetTransitions"), customerID)
	if err != nil {
		return nil, fmt.Errorf("transitions of %q: %w", customerID, err)
	}
	defer rows.Close()
	var out []*Transition
	for rows.Next() {
		t := &Transition{CustomerID: customerID}
		if err := rows.Scan(&t.From, &t.To, &t.Rule, &t.RuleSetVersion, &t.FiringID, &t.OccurredAt); err != nil {
			return nil, fmt.Errorf("transitions of %q: %w", customerID, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
