package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Delivery statuses.
const (
	DeliveryQueued     = "queued"
	DeliverySent       = "sent"
	DeliverySuppressed = "suppressed"
	DeliverySkippedCap = "skipped_cap"
	DeliveryFailed     = "failed"
)

// Delivery is one action of a firing sent through a channel.
type Delivery struct {
	ID             int64
	CustomerID     string
	FiringID       int64
	Rule           string
	Channel        string          // email or webhook
	Action         json.RawMessage // the action as the rule stated it when it fired
	Status         string
	Attempts       int
	LastError      string
	ProviderID     string
	Response       string // excerpt of the last reply, or the outbox file
	CreatedAt      time.Time
	EventID        int64 // the firing's event; 0 for scheduled firings
	RuleSetVersion string
}

// InsertDelivery queues d and sets d.ID.
func (s *Store) InsertDelivery(ctx context.Context, d *Delivery) error {
	if err := s.db.QueryRow(ctx, q("InsertDelivery"), d.CustomerID, d.FiringID, d.Rule, d.Channel,
		d.Action, d.CreatedAt).Scan(&d.ID); err != nil {
		return fmt.Errorf("insert %s delivery for %q: %w", d.Channel, d.CustomerID, err)
	}
	return nil
}

// GetDelivery reads one delivery. It returns ErrDeliveryNotFound if there is none.
func (s *Store) GetDelivery(ctx context.Context, customerID string, id int64) (*Delivery, error) {
	var (
		d       Delivery
		eventID *int64
	)
	err := s.db.QueryRow(ctx, q("GetDelivery"), customerID, id).Scan(&d.ID, &d.CustomerID, &d.FiringID, &d.Rule,
		&d.Channel, &d.Action, &d.Status, &d.Attempts, &d.LastError, &d.ProviderID, &d.Response, &d.CreatedAt, &eventID, &d.RuleSetVersion)
	if err != nil {
		return nil, fmt.Errorf("get delivery %d: %w", id, wrapNoRows(err, ErrDeliveryNotFound))
	}
	if eventID != nil {
		d.EventID = *eventID
	}
	return &d, nil
}

// Outcome is the result of one delivery attempt.
type Outcome struct {
	Status       string
	Attempted    bool // an attempt was made (counts toward attempts)
	Error        string
	ProviderID   string
	ResponseCode int    // 0: none
	Response     string // excerpt of the reply; "" keeps the stored one
	At           time.Time
}

// FinishDelivery records an attempt's outcome on the delivery.
func (s *Store) FinishDelivery(ctx context.Context, customerID string, id int64, o Outcome) error {
	attempts := 0
	if o.Attempted {
		attempts = 1
	}
	var code *int
	if o.ResponseCode != 0 {
		code = &o.ResponseCode
	}
	args := []any{customerID, id, o.Status, attempts, o.Error, o.ProviderID, code, o.At, o.Response}
	db, ok := s.db.(interface {
		SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	})
	if _, inTx := s.db.(pgx.Tx); !ok || inTx {
		if _, err := s.db.Exec(ctx, q("FinishDelivery"), args...); err != nil {
			return fmt.Errorf("record delivery %d outcome: %w", id, err)
		}
		return nil
	}
	var b pgx.Batch
	b.Queue(q("AsyncCommit"))
	b.Queue(q("FinishDelivery"), args...)
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("record delivery %d outcome: %w", id, err)
	}
	return nil
}

// Cap is a frequency-cap decision for one email delivery.
type Cap struct {
	// Max is the number of marketing emails allowed in the window.
	Max int
	// Since is the start of the window: emails sent after it count.
	Since time.Time
	// StaleBefore bounds claims: a claim older than this (its sender
	// crashed mid-send) no longer counts.
	StaleBefore time.Time
	// Now is recorded as the claim time.
	Now time.Time
}

// ClaimUnderCap decides whether a customer's email delivery may be sent under
// the frequency cap and, if so, claims it so that it counts against the cap
// while being sent. It returns the number of emails that counted and whether
// the delivery was claimed.
//
// Concurrent dispatches for one customer must not both see "2 of 3 sent"
// and both send. The decision therefore runs after a per-customer advisory
// transaction lock (LockCustomerSends) in the same transaction: dispatches
// for one customer decide one after the other, and each sees the claims the
// earlier ones committed. The lock is released at commit, before the email
// is sent, so no lock or connection is held across the SMTP exchange. Both
// statements go in one pipelined batch, an implicit transaction: one round
// trip. FinishDelivery clears the claim.
func (s *Store) ClaimUnderCap(ctx context.Context, customerID string, id int64, c Cap) (int, bool, error) {
	db, ok := s.db.(interface {
		SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	})
	if !ok {
		return 0, false, fmt.Errorf("claim delivery %d: store cannot send a batch", id)
	}
	var (
		n       int
		claimed bool
		b       pgx.Batch
	)
	b.Queue(q("LockCustomerSends"), customerID)
	b.Queue(q("ClaimUnderCap"), customerID, id, c.Since, c.StaleBefore, c.Max, c.Now).QueryRow(func(row pgx.Row) error {
		return row.Scan(&n, &claimed)
	})
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		return 0, false, fmt.Errorf("claim delivery %d under frequency cap: %w", id, err)
	}
	return n, claimed, nil
}

// Dispatch is everything sending one delivery needs.
type Dispatch struct {
	Delivery *Delivery
	Customer *Customer
	// Suppressed is why the customer's address is suppressed; "" if it is not.
	Suppressed string
	// Event is the firing's event; nil for scheduled firings.
	Event *Event
	// Coupon is the first coupon the firing issued; nil if none.
	Coupon *Coupon
	// OriginAt is when the firing's event was received, or the delivery
	// created for scheduled firings: where its latency counts from.
	OriginAt time.Time
}

// GetDispatch reads a delivery with its customer, suppression, event and
// coupon in one query. It returns ErrDeliveryNotFound if there is none.
func (s *Store) GetDispatch(ctx context.Context, customerID string, id int64) (*Dispatch, error) {
	var (
		d         Delivery
		cc        customerColumns
		eventID   *int64
		reason    string
		evType    *string
		evProps   map[string]any
		evAt      *time.Time
		cpCode    *string
		cpKind    *string
		cpValue   *float64
		cpExpires *time.Time
		originAt  time.Time
	)
	targets := []any{&d.ID, &d.CustomerID, &d.FiringID, &d.Rule, &d.Channel, &d.Action, &d.Status, &d.Attempts,
		&d.LastError, &d.ProviderID, &d.Response, &d.CreatedAt, &eventID, &d.RuleSetVersion}
	targets = append(targets, cc.targets()...)
	targets = append(targets, &reason, &evType, &evProps, &evAt, &cpCode, &cpKind, &cpValue, &cpExpires, &originAt)
	if err := s.db.QueryRow(ctx, q("GetDispatch"), customerID, id).Scan(targets...); err != nil {
		return nil, fmt.Errorf("get delivery %d: %w", id, wrapNoRows(err, ErrDeliveryNotFound))
	}
	if eventID != nil {
		d.EventID = *eventID
	}
	out := &Dispatch{Delivery: &d, Customer: cc.customer(), Suppressed: reason, OriginAt: originAt}
	if evType != nil {
		out.Event = &Event{ID: d.EventID, CustomerID: d.CustomerID, Type: *evType, Properties: evProps, OccurredAt: timeOrZero(evAt)}
	}
	if cpCode != nil {
		out.Coupon = &Coupon{Code: *cpCode, CustomerID: d.CustomerID, Rule: d.Rule, FiringID: d.FiringID,
			Kind: *cpKind, Value: *cpValue, ExpiresAt: timeOrZero(cpExpires)}
	}
	return out, nil
}

// FirstDelivery reads a customer's first delivery. It returns
// ErrDeliveryNotFound if there is none yet.
func (s *Store) FirstDelivery(ctx context.Context, customerID string) (*Delivery, error) {
	var id int64
	if err := s.db.QueryRow(ctx, q("FirstDeliveryID"), customerID).Scan(&id); err != nil {
		return nil, fmt.Errorf("first delivery of %q: %w", customerID, wrapNoRows(err, ErrDeliveryNotFound))
	}
	return s.GetDelivery(ctx, customerID, id)
}
