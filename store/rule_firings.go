package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
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
	// Holdout marks a firing for a customer in the rule's holdout group:
	// recorded, with no effects, so reports can compare the groups.
	Holdout bool
}

// Fire is one rule firing with everything it writes (see Store.Fire).
type Fire struct {
	Firing Firing
	// Stages are the stages the firing moves the customer to, in action
	// order; each move to another stage than the current one is logged.
	Stages []string
	// Coupons are the coupons to issue. Code may be preset; Store.Fire
	// draws one otherwise, and again when it was taken. CustomerID, Rule,
	// FiringID and CreatedAt are set from the firing.
	Coupons []*Coupon
	// Deliveries are the deliveries to queue, in action order. CustomerID,
	// Rule, FiringID, Status and CreatedAt are set from the firing.
	Deliveries []*Delivery
	// Points are the points lots to grant, each in the firing's
	// transaction with a points_granted event (see FirePoints).
	Points []*FirePoints

	// Fired is set by Store.Fire when the firing was written; false when the
	// rule already fired for the occurrence or within its cooldown.
	Fired bool
	// Transitions are the stage changes logged, in action order (set by
	// Store.Fire).
	Transitions []*Transition
}

// Fire writes the firings fs and, for each one written, all it does, in
// bulk and in one statement: the firing row (unique per customer, rule and
// occurrence, and outside its cooldown: otherwise the firing and its effects
// are left out and Fired stays false), its stage moves chained per customer
// in order (each change logged as a transition; the customer row updated
// once, with its earliest new coupon expiry too), its coupons and its
// queued deliveries. It sets the ids of the firings, coupons and
// deliveries. An event's firings are the one-customer case, a sweep's batch
// the many-customer one.
//
// newCode draws coupon codes: a code taken already (or twice in the batch)
// is drawn again, up to attempts tries per coupon in all. A customer may
// appear in several firings, each rule at most once per customer. Hold the
// customers' row locks for the cooldown look-back and the stage chain to be
// race-free; the caller enqueues the deliveries' dispatch jobs in the same
// transaction.
func (s *Store) Fire(ctx context.Context, fs []*Fire, newCode func() string, attempts int) error {
	if len(fs) == 0 {
		return nil
	}
	a := newFireArrays(len(fs))
	var seen map[[2]string]bool
	if len(fs) > 1 {
		seen = make(map[[2]string]bool, len(fs))
	}
	for i, f := range fs {
		fr := &f.Firing
		if seen != nil {
			k := [2]string{fr.CustomerID, fr.Rule}
			if seen[k] {
				return fmt.Errorf("fire %d rules: %q fires twice for %q in one batch", len(fs), fr.Rule, fr.CustomerID)
			}
			seen[k] = true
		}
		f.Fired, f.Transitions, fr.ID = false, nil, 0
		a.addFiring(fr)
		for _, st := range f.Stages {
			a.stageFire, a.stageTo = append(a.stageFire, int64(i+1)), append(a.stageTo, st)
		}
		for _, c := range f.Coupons {
			c.ID, c.CustomerID, c.Rule, c.CreatedAt = 0, fr.CustomerID, fr.Rule, fr.FiredAt
			a.couponFire = append(a.couponFire, int64(i+1))
		}
		for _, d := range f.Deliveries {
			d.ID, d.CustomerID, d.Rule, d.Status, d.CreatedAt = 0, fr.CustomerID, fr.Rule, DeliveryQueued, fr.FiredAt
			a.deliveryFire, a.deliveryChannel, a.deliveryAction = append(a.deliveryFire, int64(i+1)), append(a.deliveryChannel, d.Channel), append(a.deliveryAction, d.Action)
		}
	}
	coupons := make([]*Coupon, 0, len(a.couponFire))
	for _, f := range fs {
		coupons = append(coupons, f.Coupons...)
	}
	if len(coupons) > 0 && attempts < 1 {
		return fmt.Errorf("fire %d rules: no coupon code draws allowed", len(fs))
	}
	cc := newCouponColumns(coupons, newCode)
	couponFire := make([]int64, len(cc.included))
	for i, n := range cc.included {
		couponFire[i] = a.couponFire[n]
	}

	rows, err := s.db.Query(ctx, q("FireRules"), pgx.NamedArgs{
		"customer_ids":      a.customer,
		"rules":             a.rule,
		"occurrences":       a.occurrence,
		"rule_set_versions": a.version,
		"event_ids":         a.eventID,
		"fired_at":          a.firedAt,
		"cooldowns_ms":      a.cooldown,
		"stage_firings":     a.stageFire,
		"stage_tos":         a.stageTo,
		"coupon_firings":    couponFire,
		"coupon_codes":      cc.code,
		"coupon_kinds":      cc.kind,
		"coupon_values":     cc.value,
		"coupon_expires":    cc.expires,
		"delivery_firings":  a.deliveryFire,
		"delivery_channels": a.deliveryChannel,
		"delivery_actions":  a.deliveryAction,
		"holdouts":          a.holdout,
	})
	if err != nil {
		return fmt.Errorf("fire %d rules: %w", len(fs), err)
	}
	defer rows.Close()
	// Stage action n (1-based, over all firings) is stage j of firing i.
	type stageRef struct{ fire, stage int }
	stageRefs := make([]stageRef, 0, len(a.stageTo))
	transitions := make([]*Transition, len(a.stageTo))
	deliveries := make([]*Delivery, 0, len(a.deliveryFire))
	for i, f := range fs {
		for j := range f.Stages {
			stageRefs = append(stageRefs, stageRef{i, j})
		}
		deliveries = append(deliveries, f.Deliveries...)
	}
	for rows.Next() {
		var (
			kind string
			ord  int
			id   int64
			text string
		)
		if err := rows.Scan(&kind, &ord, &id, &text); err != nil {
			return fmt.Errorf("fire %d rules: %w", len(fs), err)
		}
		switch kind {
		case "firing":
			f := fs[ord-1]
			f.Fired, f.Firing.ID = true, id
		case "transition":
			ref := stageRefs[ord-1]
			f := fs[ref.fire]
			transitions[ord-1] = &Transition{CustomerID: f.Firing.CustomerID, From: text, To: f.Stages[ref.stage],
				Rule: f.Firing.Rule, RuleSetVersion: f.Firing.RuleSetVersion, OccurredAt: f.Firing.FiredAt}
		case "coupon":
			cc.stored(text, id)
		case "delivery":
			deliveries[ord-1].ID = id
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("fire %d rules: %w", len(fs), err)
	}
	rows.Close()

	// Transitions come back in no particular order: keep action order.
	for n, t := range transitions {
		if t != nil {
			f := fs[stageRefs[n].fire]
			t.FiringID = f.Firing.ID
			f.Transitions = append(f.Transitions, t)
		}
	}
	var again []*Coupon
	for _, f := range fs {
		if !f.Fired {
			continue
		}
		id := f.Firing.ID
		for _, c := range f.Coupons {
			c.FiringID = id
			if c.ID == 0 {
				again = append(again, c)
			}
		}
		for _, d := range f.Deliveries {
			d.FiringID = id
		}
	}
	if err := s.insertCoupons(ctx, again, newCode, attempts-1); err != nil {
		return err
	}
	return s.firePoints(ctx, fs)
}

// FirePoints is a points lot a firing grants (a rule's points action).
// Store.Fire sets the grant's CustomerID, Rule, FiringID, GrantedAt and Key
// ("firing:<firing id>:<action index>", so a retried firing grants once).
type FirePoints struct {
	// Action is the index of the points action in its rule.
	Action int
	// Grant holds Amount, Reason, OrderID, AvailableAt and ExpiresAt.
	Grant PointsGrantReq

	// LotID is the lot granted (set by Store.Fire).
	LotID int64
	// Event is the points_granted event recorded (set by Store.Fire; zero
	// when the lot had been granted before).
	Event EventRef
}

// firePoints grants the points lots of the firings written, with their
// points_granted events.
func (s *Store) firePoints(ctx context.Context, fs []*Fire) error {
	var (
		grants []PointsGrantReq
		refs   []*FirePoints
	)
	for _, f := range fs {
		if !f.Fired {
			continue
		}
		for _, p := range f.Points {
			g := p.Grant
			g.CustomerID, g.Rule, g.FiringID, g.GrantedAt = f.Firing.CustomerID, f.Firing.Rule, f.Firing.ID, f.Firing.FiredAt
			g.Key = "firing:" + strconv.FormatInt(f.Firing.ID, 10) + ":" + strconv.Itoa(p.Action)
			p.Grant = g
			grants, refs = append(grants, g), append(refs, p)
		}
	}
	if len(grants) == 0 {
		return nil
	}
	out, err := s.GrantPoints(ctx, grants)
	if err != nil {
		return err
	}
	var evs []PointsEvent
	var evRefs []*FirePoints
	for i, g := range out {
		refs[i].LotID = g.LotID
		if g.Created {
			evs, evRefs = append(evs, grantedEvent(&refs[i].Grant, g.LotID)), append(evRefs, refs[i])
		}
	}
	got, err := s.InsertPointsEvents(ctx, evs, grants[0].GrantedAt)
	if err != nil {
		return err
	}
	for i, e := range got {
		evRefs[i].Event = e
	}
	return nil
}

// fireArrays are the columns of Store.Fire's statement. Stages, coupons
// and deliveries name their firing by its 1-based position.
type fireArrays struct {
	customer, rule, occurrence, version []string
	eventID                             []*int64
	firedAt                             []time.Time
	cooldown                            []int64
	holdout                             []bool

	stageFire []int64
	stageTo   []string

	couponFire []int64

	deliveryFire    []int64
	deliveryChannel []string
	deliveryAction  []json.RawMessage
}

// newFireArrays returns empty columns with room for n firings with an
// effect of each kind.
func newFireArrays(n int) *fireArrays {
	return &fireArrays{
		customer: make([]string, 0, n), rule: make([]string, 0, n), occurrence: make([]string, 0, n), version: make([]string, 0, n),
		eventID: make([]*int64, 0, n), firedAt: make([]time.Time, 0, n), cooldown: make([]int64, 0, n),
		stageFire: make([]int64, 0, n), stageTo: make([]string, 0, n), couponFire: make([]int64, 0, n),
		deliveryFire: make([]int64, 0, n), deliveryChannel: make([]string, 0, n), deliveryAction: make([]json.RawMessage, 0, n),
	}
}

func (a *fireArrays) addFiring(f *Firing) {
	var eventID *int64
	if f.EventID != 0 {
		eventID = &f.EventID
	}
	a.customer = append(a.customer, f.CustomerID)
	a.rule = append(a.rule, f.Rule)
	a.occurrence = append(a.occurrence, f.Occurrence)
	a.version = append(a.version, f.RuleSetVersion)
	a.eventID = append(a.eventID, eventID)
	a.firedAt = append(a.firedAt, f.FiredAt)
	a.cooldown = append(a.cooldown, f.Cooldown.Milliseconds())
	a.holdout = append(a.holdout, f.Holdout)
}
