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
	if _, err := s.db.Exec(ctx, q("FinishDelivery"), customerID, id, o.Status, attempts, o.Error, o.ProviderID, code, o.At, o.Response); err != nil {
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
// the delivery was claimed. The decision runs in a short transaction holding
// a per-customer advisory lock, so concurrent dispatches for one customer
// decide one after the other and see each other's claims; the lock is
// released before the email is sent. FinishDelivery clears the claim.
func (s *Store) ClaimUnderCap(ctx context.Context, customerID string, id int64, c Cap) (int, bool, error) {
	db, ok := s.db.(interface {
		Begin(ctx context.Context) (pgx.Tx, error)
	})
	if !ok {
		return 0, false, fmt.Errorf("claim delivery %d: store cannot begin a transaction", id)
	}
	var (
		n       int
		claimed bool
	)
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, q("LockCustomerSends"), customerID); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, q("CountCappedEmails"), customerID, c.Since, c.StaleBefore, id).Scan(&n); err != nil {
			return err
		}
		if n >= c.Max {
			return nil
		}
		tag, err := tx.Exec(ctx, q("ClaimDelivery"), customerID, id, c.Now)
		claimed = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("claim delivery %d under frequency cap: %w", id, err)
	}
	return n, claimed, nil
}
