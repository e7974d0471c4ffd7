// Package store is ciclo's data access: the only package that knows pgx and
// ciclo's SQL, which lives in sql/ as named queries, one file per table.
//
// A Store runs its queries on whatever it was built with: a pool, or a
// transaction (WithTx) so that a caller can combine several writes, and River
// job inserts, atomically.
package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Sentinel errors callers test for with errors.Is.
var (
	ErrCustomerNotFound    = errors.New("customer not found")
	ErrEventNotFound       = errors.New("event not found")
	ErrDeliveryNotFound    = errors.New("delivery not found")
	ErrSuppressionNotFound = errors.New("address not suppressed")
)

// DBTX is what a Store runs queries on: *pgxpool.Pool, *pgx.Conn or pgx.Tx.
// All of them pipeline statements (SendBatch), which the store relies on.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	batcher
}

// batcher is the pipelining part of DBTX.
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Store reads and writes ciclo's tables.
type Store struct {
	db DBTX
	// perEvent makes IngestEventsQueued store every event with a
	// statement of its own (the equivalence test's reference path).
	perEvent bool
}

// New returns a Store running its queries on db.
func New(db DBTX) *Store { return &Store{db: db} }

// WithTx returns a Store running its queries in tx.
func (s *Store) WithTx(tx pgx.Tx) *Store { return &Store{db: tx} }

// Customer is a customer's facts as stored.
type Customer struct {
	ID             string
	Email          string
	Name           string
	Timezone       string
	Stage          string
	StageEnteredAt time.Time // zero: never set
	CreatedAt      time.Time
	LastSeenAt     time.Time // zero: never seen
	FirstOrderAt   time.Time // zero: never ordered
	LastOrderAt    time.Time // zero: never ordered
	OrdersCount    int
	TotalSpent     float64 // in currency units
	Attributes     map[string]any
	UnsubscribedAt time.Time // zero: subscribed
	// CouponExpiresAt is the earliest expiry of an unredeemed, unexpired
	// coupon; zero when none. Read by sweeps only (SweepPage).
	CouponExpiresAt time.Time
	// PointsBalance, PointsPending and PointsExpiringAt are the customer's
	// points at the evaluation time (see PointsSummary); Tier its loyalty
	// tier. Read by sweeps (SweepPage) and filled in by the evaluate worker.
	PointsBalance    int64
	PointsPending    int64
	PointsExpiringAt time.Time
	Tier             string
}

// Event is a stored event.
type Event struct {
	ID             int64
	CustomerID     string
	Type           string
	Properties     map[string]any
	OccurredAt     time.Time
	ReceivedAt     time.Time
	IdempotencyKey string
}

// timeOrZero maps a nullable timestamptz to a zero time.
func timeOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// nullTime maps a zero time to SQL NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// cents converts currency units to integer cents, rounding half away from zero.
func cents(units float64) int64 { return int64(math.Round(units * 100)) }

func wrapNoRows(err error, sentinel error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return sentinel
	}
	return err
}

// GetCustomer reads one customer. It returns ErrCustomerNotFound if there is none.
func (s *Store) GetCustomer(ctx context.Context, id string) (*Customer, error) {
	c, err := scanCustomer(s.db.QueryRow(ctx, q("GetCustomer"), id))
	if err != nil {
		return nil, fmt.Errorf("get customer %q: %w", id, wrapNoRows(err, ErrCustomerNotFound))
	}
	return c, nil
}

// scanCustomer reads the customer columns in the order the queries list them.
func scanCustomer(row pgx.Row) (*Customer, error) {
	var cc customerColumns
	if err := row.Scan(cc.targets()...); err != nil {
		return nil, err
	}
	return cc.customer(), nil
}

// customerFields are the customer fields (rules' names) in the order the
// queries list their columns after the id: GetCustomer, IngestEvent's
// RETURNING, GetDispatches. Sweeps read a subset (SweepQuery), and also
// coupon_expires_at.
var customerFields = []string{"email", "name", "timezone", "stage", "stage_entered_at", "created_at", "last_seen_at",
	"first_order_at", "last_order_at", "orders_count", "total_spent", "attributes", "unsubscribed"}

// customerColumns receives the customer columns from a scan, as part of a
// longer row or alone: the one mapping of customer columns to Customer. Its
// nullable times scan without allocating, so a sweep reuses one for all its
// rows.
type customerColumns struct {
	id, email, name, timezone, stage                                    string
	stageAt, created, lastSeen, firstOrder, lastOrder, unsubscribed, cx pgtype.Timestamptz
	orders                                                              int32
	spentCents, pointsBalance, pointsPending                            int64
	pointsExpiring                                                      pgtype.Timestamptz
	tier                                                                string
	attrs                                                               map[string]any
}

// targets are the scan destinations of the id and all customerFields, in order.
func (cc *customerColumns) targets() []any { return cc.fieldTargets(customerFields) }

// fieldTargets are the scan destinations of the id and the given fields
// (rules' names, coupon_expires_at included), in order; unknown names get
// none.
func (cc *customerColumns) fieldTargets(fields []string) []any {
	dst := make([]any, 1, len(fields)+1)
	dst[0] = &cc.id
	for _, f := range fields {
		var p any
		switch f {
		case "email":
			p = &cc.email
		case "name":
			p = &cc.name
		case "timezone":
			p = &cc.timezone
		case "stage":
			p = &cc.stage
		case "stage_entered_at":
			p = &cc.stageAt
		case "created_at":
			p = &cc.created
		case "last_seen_at":
			p = &cc.lastSeen
		case "first_order_at":
			p = &cc.firstOrder
		case "last_order_at":
			p = &cc.lastOrder
		case "orders_count":
			p = &cc.orders
		case "total_spent":
			p = &cc.spentCents
		case "attributes":
			p = &cc.attrs
		case "unsubscribed":
			p = &cc.unsubscribed
		case "coupon_expires_at":
			p = &cc.cx
		case "points_balance":
			p = &cc.pointsBalance
		case "points_pending":
			p = &cc.pointsPending
		case "points_expiring_at":
			p = &cc.pointsExpiring
		case "tier":
			p = &cc.tier
		default:
			continue
		}
		dst = append(dst, p)
	}
	return dst
}

// customer converts the scanned columns.
func (cc *customerColumns) customer() *Customer {
	c := &Customer{}
	cc.into(c)
	return c
}

// into converts the scanned columns into c; the attributes map moves to c,
// so the next scan fills a new one.
func (cc *customerColumns) into(c *Customer) {
	*c = Customer{
		ID: cc.id, Email: cc.email, Name: cc.name, Timezone: cc.timezone, Stage: cc.stage,
		StageEnteredAt: tsOrZero(cc.stageAt), CreatedAt: tsOrZero(cc.created), LastSeenAt: tsOrZero(cc.lastSeen),
		FirstOrderAt: tsOrZero(cc.firstOrder), LastOrderAt: tsOrZero(cc.lastOrder), OrdersCount: int(cc.orders),
		TotalSpent: float64(cc.spentCents) / 100, Attributes: cc.attrs, UnsubscribedAt: tsOrZero(cc.unsubscribed),
		CouponExpiresAt: tsOrZero(cc.cx),
		PointsBalance:   cc.pointsBalance, PointsPending: cc.pointsPending, PointsExpiringAt: tsOrZero(cc.pointsExpiring), Tier: cc.tier,
	}
	cc.attrs = nil
}

// tsOrZero maps a NULL timestamptz to a zero time.
func tsOrZero(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time
}

// GetEvent reads one event of a customer. It returns ErrEventNotFound if there is none.
func (s *Store) GetEvent(ctx context.Context, customerID string, id int64) (*Event, error) {
	var e Event
	err := s.db.QueryRow(ctx, q("GetEvent"), customerID, id).Scan(&e.ID, &e.CustomerID, &e.Type,
		&e.Properties, &e.OccurredAt, &e.ReceivedAt, &e.IdempotencyKey)
	if err != nil {
		return nil, fmt.Errorf("get event %d: %w", id, wrapNoRows(err, ErrEventNotFound))
	}
	return &e, nil
}
