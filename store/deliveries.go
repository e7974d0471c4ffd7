package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
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
