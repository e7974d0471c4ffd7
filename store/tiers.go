package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ciclohq/ciclo/rules"
)

// Reasons a tier changed (tier_transitions.reason) besides an event's
// evaluation, whose reason is EventTierReason.
const (
	// TierReasonSweep is the daily tier sweep: a window rolled past, or
	// the rule set's tiers changed.
	TierReasonSweep = "tier sweep"
)

// TierRecompute says whose tiers RecomputeTiers derives, and how.
type TierRecompute struct {
	// Tiers are the rule set's tiers, lowest first; none moves every
	// customer with a tier to no tier.
	Tiers []rules.Tier
	// CustomerIDs limits the run to these customers; nil means all, paged
	// by key: those after After, at most Limit (default 10,000).
	CustomerIDs []string
	After       string
	Limit       int
	// Now is the instant the windows end at and the changes are logged at.
	Now time.Time
	// Reason and RuleSetVersion are logged with each change.
	Reason, RuleSetVersion string
}

// TierChange is one customer's tier change, with its tier_changed event
// (a zero Event.ID if that event was recorded before).
type TierChange struct {
	CustomerID   string
	TransitionID int64
	From, To     string
	Event        EventRef
}

// TierPage is what one RecomputeTiers call did: the changes, the last key
// read (where the next page starts) and how many customers it read.
type TierPage struct {
	Changes []TierChange
	Last    string
	Read    int
}

// EventTierReason is the reason logged for a tier change found while
// evaluating an event.
func EventTierReason(eventType string, eventID int64) string {
	return "event " + eventType + " " + strconv.FormatInt(eventID, 10)
}

// RecomputeTiers derives the tiers of a page of customers from their data,
// in one statement over the whole page (see RecomputeTiers in
// sql/tiers.sql and rules.RuleSet.TierFor), writes those that changed,
// logs each in tier_transitions and records its tier_changed event
// (properties from, to) as points events are recorded; the caller enqueues
// the events' evaluation in the same transaction. The evaluate worker runs
// it for the customer it evaluates, the tier sweep for all customers page
// by page.
func (s *Store) RecomputeTiers(ctx context.Context, r *TierRecompute) (TierPage, error) {
	n := len(r.Tiers)
	names, kinds, overs, mins := make([]string, n), make([]string, n), make([]string, n), make([]int64, n)
	for i, t := range r.Tiers {
		names[i], kinds[i], overs[i], mins[i] = t.Name, t.Kind, t.Over, t.Min
	}
	limit := r.Limit
	if limit <= 0 {
		limit = 10_000
	}
	if r.CustomerIDs != nil {
		limit = max(limit, len(r.CustomerIDs))
	}
	rows, err := s.db.Query(ctx, q("RecomputeTiers"), pgx.NamedArgs{
		"names": names, "kinds": kinds, "overs": overs, "mins": mins,
		"ids": r.CustomerIDs, "after": r.After, "limit": limit,
		"cal_start":  rules.WindowStart(rules.TierCalendarYear, r.Now),
		"roll_start": rules.WindowStart(rules.TierRolling365d, r.Now),
		"now":        r.Now, "reason": r.Reason, "version": r.RuleSetVersion,
	})
	if err != nil {
		return TierPage{}, fmt.Errorf("recompute tiers: %w", err)
	}
	var page TierPage
	for rows.Next() {
		var (
			last, cust, from, to *string
			read                 int
			id                   *int64
		)
		if err := rows.Scan(&last, &read, &cust, &id, &from, &to); err != nil {
			rows.Close()
			return TierPage{}, fmt.Errorf("recompute tiers: %w", err)
		}
		if last != nil {
			page.Last = *last
		}
		page.Read = read
		if cust != nil {
			page.Changes = append(page.Changes, TierChange{CustomerID: *cust, TransitionID: *id, From: *from, To: *to})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return TierPage{}, fmt.Errorf("recompute tiers: %w", err)
	}
	if len(page.Changes) == 0 {
		return page, nil
	}
	evs := make([]PointsEvent, len(page.Changes))
	for i, c := range page.Changes {
		evs[i] = PointsEvent{CustomerID: c.CustomerID, Type: EventTierChanged, OccurredAt: r.Now,
			Properties: map[string]any{"from": c.From, "to": c.To, "reason": r.Reason},
			Key:        EventTierChanged + ":transition:" + strconv.FormatInt(c.TransitionID, 10)}
	}
	refs, err := s.InsertPointsEvents(ctx, evs, r.Now)
	if err != nil {
		return TierPage{}, err
	}
	for i := range page.Changes {
		page.Changes[i].Event = refs[i]
	}
	return page, nil
}

// TierEvents returns the events of changes, for their evaluation.
func TierEvents(changes []TierChange) []EventRef {
	out := make([]EventRef, 0, len(changes))
	for _, c := range changes {
		if c.Event.ID != 0 {
			out = append(out, c.Event)
		}
	}
	return out
}
