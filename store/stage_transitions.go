package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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

// InsertTransition logs t as is.
func (s *Store) InsertTransition(ctx context.Context, t *Transition) error {
	var from *string
	if t.From != "" {
		from = &t.From
	}
	var firingID *int64
	if t.FiringID != 0 {
		firingID = &t.FiringID
	}
	if _, err := s.db.Exec(ctx, q("InsertTransition"), t.CustomerID, from, t.To, t.Rule, t.RuleSetVersion, firingID, t.OccurredAt); err != nil {
		return fmt.Errorf("log transition of %q to %q: %w", t.CustomerID, t.To, err)
	}
	return nil
}

// MoveStage moves the customer to t.To and logs the transition with the
// stage it left in t.From. It reports false, and logs nothing, when the
// customer already was in t.To.
func (s *Store) MoveStage(ctx context.Context, t *Transition) (bool, error) {
	var from string
	err := s.db.QueryRow(ctx, q("SetCustomerStage"), t.CustomerID, t.To, t.OccurredAt).Scan(&from)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("move %q to stage %q: %w", t.CustomerID, t.To, err)
	}
	t.From = from
	return true, s.InsertTransition(ctx, t)
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
