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
)

// Sentinel errors callers test for with errors.Is.
var (
	ErrCustomerNotFound    = errors.New("customer not found")
	ErrEventNotFound       = errors.New("event not found")
	ErrDeliveryNotFound    = errors.New("delivery not found")
	ErrSuppressionNotFound = errors.New("address not suppressed")
)

// DBTX is what a Store runs queries on: *pgxpool.Pool, *pgx.Conn or pgx.Tx.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// batcher is a DBTX that can pipeline statements (a pool, a conn or a tx).
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Store reads and writes ciclo's tables.
type Store struct {
	db DBTX
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

// customerColumns receives the customer columns (id, email, name, timezone,
// stage, stage_entered_at, created_at, last_seen_at, first_order_at,
// last_order_at, orders_count, total_spent_cents, attributes,
// unsubscribed_at) from a scan, as part of a longer row or alone.
type customerColumns struct {
	c                                                        Customer
	stageAt, lastSeen, firstOrder, lastOrder, unsubscribedAt *time.Time
	spentCents                                               int64
}

// targets are the scan destinations of the customer columns, in order.
func (cc *customerColumns) targets() []any {
	c := &cc.c
	return []any{&c.ID, &c.Email, &c.Name, &c.Timezone, &c.Stage, &cc.stageAt, &c.CreatedAt, &cc.lastSeen,
		&cc.firstOrder, &cc.lastOrder, &c.OrdersCount, &cc.spentCents, &c.Attributes, &cc.unsubscribedAt}
}

// customer converts the scanned columns.
func (cc *customerColumns) customer() *Customer {
	c := cc.c
	c.StageEnteredAt = timeOrZero(cc.stageAt)
	c.LastSeenAt = timeOrZero(cc.lastSeen)
	c.FirstOrderAt = timeOrZero(cc.firstOrder)
	c.LastOrderAt = timeOrZero(cc.lastOrder)
	c.UnsubscribedAt = timeOrZero(cc.unsubscribedAt)
	c.TotalSpent = float64(cc.spentCents) / 100
	return &c
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
