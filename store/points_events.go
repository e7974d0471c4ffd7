package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Types of the events the points ledger and the tiers record, which event
// rules can react to (`on: points_expiring`).
const (
	EventPointsGranted  = "points_granted"
	EventPointsSpent    = "points_spent"
	EventPointsExpiring = "points_expiring"
	EventPointsExpired  = "points_expired"
	EventTierChanged    = "tier_changed"
)

// PointsEvent is an event ciclo records about a customer's points or tier.
type PointsEvent struct {
	CustomerID string
	Type       string
	Properties map[string]any
	OccurredAt time.Time
	// Key makes the event idempotent per customer (e.g. "points_expired:lot:42").
	Key string
}

// InsertPointsEvents records events, each once per key, with the customer's
// facts as their snapshot, like ingested events, in the caller's
// transaction; the caller enqueues their evaluation there too. It returns
// one reference per event in input order, with a zero ID for an event
// whose key was recorded before.
func (s *Store) InsertPointsEvents(ctx context.Context, evs []PointsEvent, receivedAt time.Time) ([]EventRef, error) {
	n := len(evs)
	if n == 0 {
		return nil, nil
	}
	cust, typ, keys := make([]string, n), make([]string, n), make([]string, n)
	props, at := make([]map[string]any, n), make([]time.Time, n)
	for i, e := range evs {
		cust[i], typ[i], keys[i], props[i], at[i] = e.CustomerID, e.Type, e.Key, e.Properties, e.OccurredAt
		if props[i] == nil {
			props[i] = map[string]any{}
		}
	}
	rows, err := s.db.Query(ctx, q("InsertPointsEvents"), cust, typ, props, at, keys, receivedAt)
	if err != nil {
		return nil, fmt.Errorf("record %d points events: %w", n, err)
	}
	defer rows.Close()
	at2 := make(map[[2]string]int, n)
	for i := range evs {
		at2[[2]string{cust[i], keys[i]}] = i
	}
	out := make([]EventRef, n)
	for rows.Next() {
		var (
			e   EventRef
			key string
		)
		if err := rows.Scan(&e.CustomerID, &e.ID, &key); err != nil {
			return nil, fmt.Errorf("record %d points events: %w", n, err)
		}
		out[at2[[2]string{e.CustomerID, key}]] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("record %d points events: %w", n, err)
	}
	return out, nil
}

// RemindPoints claims up to limit available lots with points left that
// expire after now and at or before before, each once, and returns them
// per customer (LotIDs, LotID the first; Points what is left of them;
// ExpiresAt the earliest expiry) with how many lots it claimed. Run it in
// the transaction that records their points_expiring events (LotEvents).
func (s *Store) RemindPoints(ctx context.Context, now, before time.Time, limit int) ([]PointsExpired, int, error) {
	if err := s.pointsSweepSettings(ctx); err != nil {
		return nil, 0, err
	}
	rows, err := s.db.Query(ctx, q("RemindPoints"), now, before, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("claim expiring points lots: %w", err)
	}
	lots := 0
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PointsExpired, error) {
		var e PointsExpired
		if err := r.Scan(&e.CustomerID, &e.LotIDs, &e.Points, &e.ExpiresAt); err != nil {
			return e, err
		}
		e.LotID, lots = e.LotIDs[0], lots+len(e.LotIDs)
		return e, nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("claim expiring points lots: %w", err)
	}
	return out, lots, nil
}

// LotEvents are the events of the lots the expiry sweep closed
// (EventPointsExpired) or reminds of (EventPointsExpiring), one per
// customer and batch, with properties points (what the lots lost or have
// left), lot_id (the first lot), lot_ids and expires_at (the latest expiry
// of the lots closed; the earliest of those reminded of), keyed by type
// and first lot (a lot expires and is reminded of once, so its key is
// never reused).
func LotEvents(typ string, lots []PointsExpired, at time.Time) []PointsEvent {
	out := make([]PointsEvent, len(lots))
	for i, l := range lots {
		occurred := at
		if typ == EventPointsExpired {
			occurred = l.ExpiresAt
		}
		out[i] = PointsEvent{CustomerID: l.CustomerID, Type: typ, OccurredAt: occurred,
			Properties: map[string]any{"points": l.Points, "lot_id": l.LotID, "lot_ids": lotIDs(l), "expires_at": l.ExpiresAt},
			Key:        typ + ":lot:" + strconv.FormatInt(l.LotID, 10)}
	}
	return out
}

func lotIDs(l PointsExpired) []int64 {
	if l.LotIDs == nil {
		return []int64{l.LotID}
	}
	return l.LotIDs
}

// grantedEvent is the points_granted event of a lot.
func grantedEvent(g *PointsGrantReq, lotID int64) PointsEvent {
	props := map[string]any{"points": g.Amount, "lot_id": lotID, "reason": g.Reason, "rule": g.Rule,
		"order_id": g.OrderID, "available_at": availableAt(g)}
	if !g.ExpiresAt.IsZero() {
		props["expires_at"] = g.ExpiresAt
	}
	return PointsEvent{CustomerID: g.CustomerID, Type: EventPointsGranted, Properties: props,
		OccurredAt: g.GrantedAt, Key: EventPointsGranted + ":lot:" + strconv.FormatInt(lotID, 10)}
}

// SpentEvents are the points_spent events of operations that took points
// (properties points, the points taken, > 0; kind redeem, reverse or
// adjust; order_id, reason, debt and operation_id): redemptions, reversals
// of the points of a refunded or cancelled order, and negative
// adjustments. Duplicates, positive adjustments and operations that took
// nothing have none.
func SpentEvents(customerID string, ops ...PointsOp) []PointsEvent {
	var out []PointsEvent
	for _, op := range ops {
		points := op.Points
		if op.Kind == OpAdjust {
			points = -points
		}
		if op.Duplicate || op.ID == 0 || points <= 0 {
			continue
		}
		out = append(out, PointsEvent{CustomerID: customerID, Type: EventPointsSpent,
			Properties: map[string]any{"points": points, "kind": op.Kind, "order_id": op.OrderID, "reason": op.Reason,
				"debt": op.Debt, "operation_id": op.ID},
			OccurredAt: op.CreatedAt, Key: EventPointsSpent + ":op:" + strconv.FormatInt(op.ID, 10)})
	}
	return out
}

// OpEvents are the events of spending operations and adjustments: their
// points_spent events (SpentEvents), and for a positive adjustment the
// points_granted event of the lot it granted, like a rule's grant (reason
// the adjustment's; rule and order_id empty; no expires_at: it never
// expires), so rules on points_granted see support corrections too.
func OpEvents(customerID string, ops ...PointsOp) []PointsEvent {
	out := SpentEvents(customerID, ops...)
	for _, op := range ops {
		if op.Kind != OpAdjust || op.Duplicate || op.LotID == 0 || op.Points <= 0 {
			continue
		}
		out = append(out, grantedEvent(&PointsGrantReq{CustomerID: customerID, Amount: op.Points, Reason: op.Reason,
			GrantedAt: op.CreatedAt}, op.LotID))
	}
	return out
}

// PointsCoupon returns the coupon a redemption turned points into, by the
// rule name it was issued under ("points:op:<operation id>"); nil if none.
func (s *Store) PointsCoupon(ctx context.Context, customerID, rule string) (*Coupon, error) {
	var c Coupon
	err := s.db.QueryRow(ctx, q("GetPointsCoupon"), customerID, rule).Scan(&c.ID, &c.Code, &c.Kind, &c.Value)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("coupon of %q for %s: %w", customerID, rule, err)
	}
	c.CustomerID, c.Rule = customerID, rule
	return &c, nil
}

func availableAt(g *PointsGrantReq) time.Time {
	if g.AvailableAt.IsZero() {
		return g.GrantedAt
	}
	return g.AvailableAt
}
