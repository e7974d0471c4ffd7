package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Points errors callers test for with errors.Is.
var (
	// ErrInsufficientPoints is returned (wrapped in *InsufficientPointsError)
	// when a redemption asks for more than the customer can spend.
	ErrInsufficientPoints = errors.New("insufficient points")
	// ErrPointsKeyReused is returned when an idempotency key is reused for
	// a different operation (other points, order or kind).
	ErrPointsKeyReused = errors.New("points idempotency key reused with different parameters")
)

// Kinds of points entries; the balance is the sum of all of them.
const (
	PointsGrant   = "grant"
	PointsSpend   = "spend"
	PointsExpire  = "expire"
	PointsReverse = "reverse"
	PointsAdjust  = "adjust"
	// PointsDebt records points a reversal could not take back because the
	// customer had spent them: the balance goes below zero until later
	// grants cover it.
	PointsDebt = "debt"
)

// Kinds of points operations.
const (
	OpRedeem  = "redeem"
	OpReverse = "reverse"
	OpAdjust  = "adjust"
)

// InsufficientPointsError says how many points were asked for and how many
// could be spent.
type InsufficientPointsError struct {
	Asked, Spendable int64
}

func (e *InsufficientPointsError) Error() string {
	return fmt.Sprintf("asked to spend %d points, %d available", e.Asked, e.Spendable)
}

// Is makes errors.Is(err, ErrInsufficientPoints) true.
func (e *InsufficientPointsError) Is(target error) bool { return target == ErrInsufficientPoints }

// PointsGrantReq is one lot to grant.
type PointsGrantReq struct {
	CustomerID string
	Amount     int64 // > 0
	Reason     string
	Rule       string // the rule that granted it, if any
	FiringID   int64  // 0: none
	OrderID    string // the order that earned it, so a refund reverses it
	GrantedAt  time.Time
	// AvailableAt is when the lot becomes spendable; zero means GrantedAt.
	AvailableAt time.Time
	// ExpiresAt is when what is left of the lot expires; zero: never.
	ExpiresAt time.Time
	// Key makes the grant idempotent per customer (e.g. "firing:42").
	Key string
}

// PointsGranted is the outcome of one grant.
type PointsGranted struct {
	LotID   int64
	Created bool // false: the key was granted before; nothing changed
}

// PointsOp is a spending operation: a redemption, a reversal or an
// adjustment.
type PointsOp struct {
	ID        int64
	Kind      string
	Points    int64 // redeemed or reversed (> 0), or adjusted (signed)
	OrderID   string
	Reason    string
	CreatedAt time.Time
	// Duplicate is true when the key was used before and this call
	// returned the first call's operation without changing anything.
	Duplicate bool
	// Debt is the part of a reversal that could not be taken back.
	Debt int64
	// LotID is the lot a positive adjustment granted (0 otherwise).
	LotID int64
}

// PointsExpired is the lots of one customer the expiry sweep closed or
// reminds of in one batch (LotIDs; LotID is the first, Points what they
// lost or have left, ExpiresAt the latest expiry of those closed, the
// earliest of those reminded of).
type PointsExpired struct {
	CustomerID string
	LotID      int64
	LotIDs     []int64
	Points     int64
	ExpiresAt  time.Time
}

// PointsSummary is a customer's points at an instant.
type PointsSummary struct {
	// Balance is the sum of the ledger; below zero while a debt is open.
	Balance int64
	// Pending is what is left of lots not yet available.
	Pending int64
	// NextExpiry is the earliest expiry of available points left; zero
	// when none expire.
	NextExpiry time.Time
	// Tier is the customer's loyalty tier; "" for none.
	Tier string
}

// PointsLot is a lot with something left.
type PointsLot struct {
	ID          int64
	Amount      int64
	Remaining   int64
	Reason      string
	Rule        string
	OrderID     string
	GrantedAt   time.Time
	AvailableAt time.Time
	ExpiresAt   time.Time // zero: never
}

// PointsEntry is one ledger entry.
type PointsEntry struct {
	ID        int64
	LotID     int64 // 0: a debt
	Kind      string
	Amount    int64
	CreatedAt time.Time
	Reason    string
	OrderID   string
}

// GrantPoints grants lots in one statement, skipping those whose key was
// granted before; results are in input order. Callers run it in the
// transaction of the firing or request that grants them.
func (s *Store) GrantPoints(ctx context.Context, grants []PointsGrantReq) ([]PointsGranted, error) {
	n := len(grants)
	if n == 0 {
		return nil, nil
	}
	var (
		customers, reasons, rules, orders, keys = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		amounts, firings                        = make([]int64, n), make([]*int64, n)
		granted, available, expires             = make([]time.Time, n), make([]time.Time, n), make([]*time.Time, n)
	)
	for i, g := range grants {
		if g.Amount <= 0 {
			return nil, fmt.Errorf("grant points to %q: amount %d must be positive", g.CustomerID, g.Amount)
		}
		if g.Key == "" {
			return nil, fmt.Errorf("grant points to %q: an idempotency key is required", g.CustomerID)
		}
		customers[i], amounts[i], reasons[i], rules[i], orders[i], keys[i] = g.CustomerID, g.Amount, g.Reason, g.Rule, g.OrderID, g.Key
		if g.FiringID != 0 {
			firings[i] = &grants[i].FiringID
		}
		granted[i] = g.GrantedAt
		available[i] = g.AvailableAt
		if available[i].IsZero() {
			available[i] = g.GrantedAt
		}
		expires[i] = nullTime(g.ExpiresAt)
	}
	rows, err := s.db.Query(ctx, q("GrantPoints"), customers, amounts, reasons, rules, firings, orders,
		granted, available, expires, keys)
	if err != nil {
		return nil, fmt.Errorf("grant %d points lots: %w", n, err)
	}
	out := make([]PointsGranted, 0, n)
	for rows.Next() {
		var (
			ord int64
			g   PointsGranted
		)
		if err := rows.Scan(&ord, &g.LotID, &g.Created); err != nil {
			return nil, fmt.Errorf("grant points lots: %w", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("grant %d points lots: %w", n, err)
	}
	return out, nil
}

// RedeemPoints spends points from the customer's available lots, those
// expiring soonest first, atomically: with too few it returns an
// *InsufficientPointsError and changes nothing. A retry with the same key
// returns the first call's operation (Duplicate set); the same key with
// other points or order returns ErrPointsKeyReused. It must run in a
// transaction (it locks the customer's row until commit).
func (s *Store) RedeemPoints(ctx context.Context, customerID string, points int64, orderID, key string, at time.Time) (PointsOp, error) {
	at = at.Truncate(time.Microsecond) // as stored, so that a retry answers the same
	if points <= 0 {
		return PointsOp{}, fmt.Errorf("redeem points of %q: points %d must be positive", customerID, points)
	}
	op, err := s.beginPointsOp(ctx, customerID, OpRedeem, points, orderID, "", key)
	if err != nil || op.Duplicate {
		return op, err
	}
	var spendable int64
	if err := s.db.QueryRow(ctx, q("GetSpendable"), customerID, at).Scan(&spendable); err != nil {
		return PointsOp{}, fmt.Errorf("spendable points of %q: %w", customerID, err)
	}
	if spendable < points {
		return PointsOp{}, &InsufficientPointsError{Asked: points, Spendable: max(spendable, 0)}
	}
	if op.ID, err = s.insertPointsOp(ctx, customerID, OpRedeem, points, orderID, "", key, at); err != nil {
		return PointsOp{}, err
	}
	if _, err := s.takePoints(ctx, customerID, points, at, op.ID, PointsSpend, ""); err != nil {
		return PointsOp{}, err
	}
	op.Kind, op.Points, op.OrderID, op.CreatedAt = OpRedeem, points, orderID, at
	return op, nil
}

// ReverseOrderPoints takes back the points order earned (those that did
// not expire), once per key: first from what is left of the order's own
// lots, pending or not; what the customer already spent from them is taken
// from its other available points, soonest expiry first; what even those
// cannot cover is recorded as a debt (PointsDebt), which holds the balance
// below zero until later grants cover it. An order that earned nothing
// (or whose points all expired) records no operation: the returned op has
// ID 0. Must run in a transaction.
func (s *Store) ReverseOrderPoints(ctx context.Context, customerID, orderID, reason, key string, at time.Time) (PointsOp, error) {
	at = at.Truncate(time.Microsecond) // as stored, so that a retry answers the same
	if orderID == "" {
		return PointsOp{}, fmt.Errorf("reverse points of %q: an order id is required", customerID)
	}
	op, err := s.beginPointsOp(ctx, customerID, OpReverse, -1, orderID, reason, key)
	if err != nil || op.Duplicate {
		return op, err
	}
	var earned int64
	if err := s.db.QueryRow(ctx, q("GetOrderPointsEarned"), customerID, orderID).Scan(&earned); err != nil {
		return PointsOp{}, fmt.Errorf("points order %q earned: %w", orderID, err)
	}
	op.Kind, op.Points, op.OrderID, op.Reason, op.CreatedAt = OpReverse, earned, orderID, reason, at
	if earned <= 0 {
		return op, nil // nothing to take back, nothing recorded (op.ID is 0)
	}
	if op.ID, err = s.insertPointsOp(ctx, customerID, OpReverse, earned, orderID, reason, key, at); err != nil {
		return PointsOp{}, err
	}
	fromOrder, err := s.takePoints(ctx, customerID, earned, at, op.ID, PointsReverse, orderID)
	if err != nil {
		return PointsOp{}, err
	}
	fromOthers, err := s.takePoints(ctx, customerID, earned-fromOrder, at, op.ID, PointsReverse, "")
	if err != nil {
		return PointsOp{}, err
	}
	if op.Debt = earned - fromOrder - fromOthers; op.Debt > 0 {
		if _, err := s.db.Exec(ctx, q("InsertPointsEntry"), customerID, nil, op.ID, PointsDebt, -op.Debt, at); err != nil {
			return PointsOp{}, fmt.Errorf("record points debt of %q: %w", customerID, err)
		}
	}
	return op, nil
}

// AdjustPoints corrects a customer's points (support, goodwill), once per
// key: a positive delta grants a lot that never expires, a negative one
// takes from the available points, soonest expiry first, and records the
// part they cannot cover as a debt. reason is required. OpEvents are the
// events to record with it.
func (s *Store) AdjustPoints(ctx context.Context, customerID string, delta int64, reason, key string, at time.Time) (PointsOp, error) {
	at = at.Truncate(time.Microsecond) // as stored, so that a retry answers the same
	if delta == 0 || reason == "" {
		return PointsOp{}, fmt.Errorf("adjust points of %q: a non-zero delta and a reason are required", customerID)
	}
	op, err := s.beginPointsOp(ctx, customerID, OpAdjust, delta, "", reason, key)
	if err != nil || op.Duplicate {
		return op, err
	}
	if op.ID, err = s.insertPointsOp(ctx, customerID, OpAdjust, delta, "", reason, key, at); err != nil {
		return PointsOp{}, err
	}
	op.Kind, op.Points, op.Reason, op.CreatedAt = OpAdjust, delta, reason, at
	if delta > 0 {
		g, err := s.GrantPoints(ctx, []PointsGrantReq{{
			CustomerID: customerID, Amount: delta, Reason: reason, GrantedAt: at, Key: "adjust:" + key,
		}})
		if err != nil {
			return PointsOp{}, err
		}
		if g[0].Created {
			op.LotID = g[0].LotID
		}
		return op, nil
	}
	taken, err := s.takePoints(ctx, customerID, -delta, at, op.ID, PointsAdjust, "")
	if err != nil {
		return PointsOp{}, err
	}
	if op.Debt = -delta - taken; op.Debt > 0 {
		if _, err := s.db.Exec(ctx, q("InsertPointsEntry"), customerID, nil, op.ID, PointsDebt, -op.Debt, at); err != nil {
			return PointsOp{}, fmt.Errorf("record points debt of %q: %w", customerID, err)
		}
	}
	return op, nil
}

// ExpireCursor is where an expiry run has got to, in the order lots
// expire (expiry, customer, lot), and which customers it sweeps: those in
// Part of Parts by hash of their id, so that Parts runs side by side take
// disjoint lots and customers (Parts zero or one: all). The zero value is
// the start of a run over all customers.
type ExpireCursor struct {
	ExpiresAt  time.Time
	CustomerID string
	LotID      int64
	Part       int
	Parts      int
}

// ExpiredBatch is what one ExpirePoints call closed: per customer, its
// lots (LotIDs, LotID the first) with the points they lost and their
// latest expiry; Lots counts them all; Next is where the next call starts.
type ExpiredBatch struct {
	Customers []PointsExpired
	Lots      int
	Next      ExpireCursor
}

// ExpirePoints closes up to limit lots of the cursor's part after the
// cursor whose expiry is at or before at, in one statement, turning what
// is left of each into an expiry entry. The sweep calls it from the start
// of each part with each batch's Next until a batch holds fewer than limit
// lots, each in a transaction (PointsSweepSettings plans it there). It
// errors on a part outside 0..Parts-1.
func (s *Store) ExpirePoints(ctx context.Context, at time.Time, limit int, after ExpireCursor) (ExpiredBatch, error) {
	if err := s.pointsSweepSettings(ctx); err != nil {
		return ExpiredBatch{}, err
	}
	afterExpires := after.ExpiresAt
	if afterExpires.IsZero() {
		afterExpires = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC) // before any expiry
	}
	parts := max(after.Parts, 1)
	if after.Part < 0 || after.Part >= parts {
		return ExpiredBatch{}, fmt.Errorf("expire points lots: part %d of %d", after.Part, parts)
	}
	rows, err := s.db.Query(ctx, q("ExpirePoints"), pgx.NamedArgs{"at": at, "limit": limit,
		"after_expires": afterExpires, "after_customer": after.CustomerID, "after_id": after.LotID,
		"part": after.Part, "parts": parts})
	if err != nil {
		return ExpiredBatch{}, fmt.Errorf("expire points lots: %w", err)
	}
	b := ExpiredBatch{Next: ExpireCursor{Part: after.Part, Parts: after.Parts}}
	b.Customers, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (PointsExpired, error) {
		var e PointsExpired
		if err := r.Scan(&e.CustomerID, &e.LotIDs, &e.Points, &e.ExpiresAt, &b.Next.ExpiresAt, &b.Next.CustomerID, &b.Next.LotID, &b.Lots); err != nil {
			return e, err
		}
		e.LotID = e.LotIDs[0]
		return e, nil
	})
	if err != nil {
		return ExpiredBatch{}, fmt.Errorf("expire points lots: %w", err)
	}
	return b, nil
}

// pointsSweepSettings tunes the current transaction's planning of the
// expiry and reminder statements; on a pool it has no lasting effect.
func (s *Store) pointsSweepSettings(ctx context.Context) error {
	if _, err := s.db.Exec(ctx, q("PointsSweepSettings")); err != nil {
		return fmt.Errorf("points sweep settings: %w", err)
	}
	return nil
}

// PointsSummary reads a customer's balance, pending points and next expiry
// at an instant.
func (s *Store) PointsSummary(ctx context.Context, customerID string, at time.Time) (PointsSummary, error) {
	var (
		p    PointsSummary
		next *time.Time
	)
	if err := s.db.QueryRow(ctx, q("GetPointsSummary"), customerID, at).Scan(&p.Balance, &p.Pending, &next, &p.Tier); err != nil {
		return PointsSummary{}, fmt.Errorf("points of %q: %w", customerID, err)
	}
	p.NextExpiry = timeOrZero(next)
	return p, nil
}

// PointsLots lists a customer's lots with something left, soonest expiry
// first.
func (s *Store) PointsLots(ctx context.Context, customerID string) ([]PointsLot, error) {
	rows, err := s.db.Query(ctx, q("ListPointsLots"), customerID)
	if err != nil {
		return nil, fmt.Errorf("points lots of %q: %w", customerID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PointsLot, error) {
		var (
			l       PointsLot
			expires *time.Time
		)
		err := r.Scan(&l.ID, &l.Amount, &l.Remaining, &l.Reason, &l.Rule, &l.OrderID, &l.GrantedAt, &l.AvailableAt, &expires)
		l.ExpiresAt = timeOrZero(expires)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("points lots of %q: %w", customerID, err)
	}
	return out, nil
}

// PointsEntries lists a customer's latest ledger entries, newest first.
func (s *Store) PointsEntries(ctx context.Context, customerID string, limit int) ([]PointsEntry, error) {
	rows, err := s.db.Query(ctx, q("ListPointsEntries"), customerID, limit)
	if err != nil {
		return nil, fmt.Errorf("points entries of %q: %w", customerID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PointsEntry, error) {
		var (
			e   PointsEntry
			lot *int64
		)
		err := r.Scan(&e.ID, &lot, &e.Kind, &e.Amount, &e.CreatedAt, &e.Reason, &e.OrderID)
		if lot != nil {
			e.LotID = *lot
		}
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("points entries of %q: %w", customerID, err)
	}
	return out, nil
}

// beginPointsOp locks the customer and looks its key up: a known key with
// the same parameters returns that operation as a duplicate, with other
// parameters ErrPointsKeyReused. points < 0 matches any (a reversal's
// points are computed, not asked for).
func (s *Store) beginPointsOp(ctx context.Context, customerID, kind string, points int64, orderID, reason, key string) (PointsOp, error) {
	if key == "" {
		return PointsOp{}, fmt.Errorf("%s points of %q: an idempotency key is required", kind, customerID)
	}
	var id string
	err := s.db.QueryRow(ctx, q("LockPointsCustomer"), customerID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return PointsOp{}, ErrCustomerNotFound
	}
	if err != nil {
		return PointsOp{}, fmt.Errorf("lock customer %q for points: %w", customerID, err)
	}
	var op PointsOp
	err = s.db.QueryRow(ctx, q("GetPointsOperation"), customerID, key).
		Scan(&op.ID, &op.Kind, &op.Points, &op.OrderID, &op.Reason, &op.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return PointsOp{}, nil
	}
	if err != nil {
		return PointsOp{}, fmt.Errorf("points operation %q of %q: %w", key, customerID, err)
	}
	if op.Kind != kind || op.OrderID != orderID || (points >= 0 && op.Points != points) {
		return PointsOp{}, fmt.Errorf("%w: key %q was used on %s for %s of %d points (order %q)",
			ErrPointsKeyReused, key, op.CreatedAt.Format(time.RFC3339), op.Kind, op.Points, op.OrderID)
	}
	op.Duplicate = true
	return op, nil
}

func (s *Store) insertPointsOp(ctx context.Context, customerID, kind string, points int64, orderID, reason, key string, at time.Time) (int64, error) {
	var id int64
	if err := s.db.QueryRow(ctx, q("InsertPointsOperation"), customerID, kind, points, orderID, reason, key, at).Scan(&id); err != nil {
		return 0, fmt.Errorf("record %s of %q: %w", kind, customerID, err)
	}
	return id, nil
}

// takePoints takes up to points from the customer's available lots, or with
// an orderID from what is left of that order's lots, and returns what it took.
func (s *Store) takePoints(ctx context.Context, customerID string, points int64, at time.Time, opID int64, kind, orderID string) (int64, error) {
	if points <= 0 {
		return 0, nil
	}
	var taken int64
	if err := s.db.QueryRow(ctx, q("TakePoints"), customerID, points, at, opID, kind, orderID).Scan(&taken); err != nil {
		return 0, fmt.Errorf("take %d points from %q: %w", points, customerID, err)
	}
	return taken, nil
}
