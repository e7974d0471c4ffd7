package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Timeline entry kinds.
const (
	TimelineEvent      = "event"
	TimelineFiring     = "firing"
	TimelineTransition = "transition"
	TimelineCoupon     = "coupon"
	TimelineDelivery   = "delivery"
	// TimelineSkip is a rule skipped for an event because its condition
	// failed at run time (Detail: event_id, error).
	TimelineSkip = "skipped"
	// TimelineHold is a queued delivery whose dispatch waits (Detail:
	// until, reason HoldQuietHours or HoldRetry, channel, timezone,
	// last_error); ID is the delivery's.
	TimelineHold = "held"
	// TimelineRun is a journey run started (ID: the run; Detail: key,
	// start_event_id); TimelineStep a step it executed (Detail: step, pc);
	// TimelineRunEnded its end (Detail: state done/exited/stopped, reason).
	TimelineRun      = "run"
	TimelineStep     = "step"
	TimelineRunEnded = "run_ended"
	// TimelinePoints is a points ledger entry (Detail: kind, amount,
	// lot_id, reason, order_id, and for a grant expires_at, available_at).
	TimelinePoints = "points"
	// TimelineTier is a loyalty tier change (Detail: from, to).
	TimelineTier = "tier"
)

// Reasons a delivery is held (TimelineHold).
const (
	HoldQuietHours = "quiet_hours"
	HoldRetry      = "retry"
)

// TimelineEntry is one thing that happened to a customer.
type TimelineEntry struct {
	At   time.Time
	Kind string // TimelineEvent, TimelineFiring, …
	ID   int64  // the row's id in its table
	// Rule and RuleSetVersion say which rule (and rule-set version, for
	// firings and transitions) did it; empty for events.
	Rule, RuleSetVersion string
	// Detail holds the kind's columns, e.g. type and properties of an
	// event, from and to of a transition, status of a delivery.
	Detail map[string]any
}

// Timeline returns the latest limit entries of a customer's history,
// oldest first: events, firings, transitions, coupons, deliveries and rule
// skips, in time order (for one instant, in that order).
func (s *Store) Timeline(ctx context.Context, customerID string, limit int) ([]*TimelineEntry, error) {
	rows, err := s.db.Query(ctx, q("CustomerTimeline"), customerID, limit)
	if err != nil {
		return nil, fmt.Errorf("timeline of %q: %w", customerID, err)
	}
	defer rows.Close()
	var out []*TimelineEntry
	for rows.Next() {
		var e TimelineEntry
		if err := rows.Scan(&e.At, &e.Kind, &e.ID, &e.Rule, &e.RuleSetVersion, &e.Detail); err != nil {
			return nil, fmt.Errorf("timeline of %q: %w", customerID, err)
		}
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("timeline of %q: %w", customerID, err)
	}
	slices.Reverse(out)
	return out, nil
}
