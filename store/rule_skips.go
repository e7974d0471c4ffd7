package store

import (
	"context"
	"fmt"
	"time"
)

// RuleSkip is a rule skipped for a customer's event because its condition
// failed at run time.
type RuleSkip struct {
	CustomerID     string
	Rule           string
	RuleSetVersion string
	// EventID is the event evaluated; 0 for none.
	EventID int64
	// Error is the evaluation error, as expr reports it.
	Error     string
	SkippedAt time.Time
}

// InsertRuleSkip records a skipped rule.
func (s *Store) InsertRuleSkip(ctx context.Context, k *RuleSkip) error {
	var eventID *int64
	if k.EventID != 0 {
		eventID = &k.EventID
	}
	if _, err := s.db.Exec(ctx, q("InsertRuleSkip"), k.CustomerID, k.Rule, k.RuleSetVersion, eventID, pgText(k.Error), k.SkippedAt); err != nil {
		return fmt.Errorf("record skip of rule %q for %q: %w", k.Rule, k.CustomerID, err)
	}
	return nil
}
