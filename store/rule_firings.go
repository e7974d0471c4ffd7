package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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

// Fire is one rule firing with everything it writes at once (see Store.Fire).
type Fire struct {
	Firing Firing
	// Stage is the stage the firing moves the customer to; "" for none.
	Stage string
	// Coupons are the coupons to issue, with their codes drawn.
	Coupons []*Coupon
	// Deliveries are the deliveries to queue, in action order.
	Deliveries []*Delivery
}

// Fired says what Store.Fire wrote.
type Fired struct {
	// Transition is the logged stage change; nil when the customer was
	// already in the stage or the firing moves none.
	Transition *Transition
	// CodesTaken are the coupons not issued because their code existed
	// already: draw new codes and issue them with InsertCoupon.
	CodesTaken []*Coupon
}

// Fire records f.Firing and, when the rule had not fired for this customer
// and occurrence yet, all it does — stage move and transition, coupons,
// deliveries — in one statement, setting the ids of the firing, coupons and
// deliveries. It reports false, and writes nothing, when the rule already
// fired for the occurrence.
func (s *Store) Fire(ctx context.Context, f *Fire) (*Fired, bool, error) {
	fr := &f.Firing
	var eventID *int64
	if fr.EventID != 0 {
		eventID = &fr.EventID
	}
	codes := make([]string, len(f.Coupons))
	kinds := make([]string, len(f.Coupons))
	values := make([]float64, len(f.Coupons))
	expires := make([]*time.Time, len(f.Coupons))
	for i, c := range f.Coupons {
		codes[i], kinds[i], values[i], expires[i] = c.Code, c.Kind, c.Value, nullTime(c.ExpiresAt)
	}
	channels := make([]string, len(f.Deliveries))
	actions := make([]string, len(f.Deliveries))
	for i, d := range f.Deliveries {
		channels[i], actions[i] = d.Channel, string(d.Action)
	}
	var (
		from                  string
		moved                 bool
		couponIDs, deliveries []int64
		issued                []string
	)
	err := s.db.QueryRow(ctx, q("FireRule"), fr.CustomerID, fr.Rule, fr.Occurrence, fr.RuleSetVersion, eventID, fr.FiredAt,
		f.Stage, codes, kinds, values, expires, channels, actions, fr.Cooldown.Milliseconds()).Scan(&fr.ID, &from, &moved, &couponIDs, &issued, &deliveries)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("fire %q: %w", fr.Rule, err)
	}
	if len(deliveries) != len(f.Deliveries) {
		return nil, false, fmt.Errorf("fire %q: %d deliveries queued, want %d", fr.Rule, len(deliveries), len(f.Deliveries))
	}
	res := &Fired{}
	if moved {
		res.Transition = &Transition{CustomerID: fr.CustomerID, From: from, To: f.Stage, Rule: fr.Rule,
			RuleSetVersion: fr.RuleSetVersion, FiringID: fr.ID, OccurredAt: fr.FiredAt}
	}
	ids := make(map[string]int64, len(issued))
	for i, code := range issued {
		ids[code] = couponIDs[i]
	}
	for _, c := range f.Coupons {
		c.FiringID = fr.ID
		if id, ok := ids[c.Code]; ok {
			c.ID = id
		} else {
			res.CodesTaken = append(res.CodesTaken, c)
		}
	}
	for i, d := range f.Deliveries {
		d.ID, d.FiringID = deliveries[i], fr.ID
	}
	return res, true, nil
}
