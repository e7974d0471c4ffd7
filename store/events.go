package store

import (
	"context"
	"fmt"
	"time"
)

// NewEvent is one event to ingest with the customer details it carries.
type NewEvent struct {
	CustomerID     string
	Type           string
	IdempotencyKey string // "" = no deduplication
	OccurredAt     time.Time
	ReceivedAt     time.Time
	Properties     map[string]any
	Email          string         // "" keeps the stored one
	Name           string         // "" keeps the stored one
	Timezone       string         // "" keeps the stored one
	Attributes     map[string]any // merged into the customer's attributes
	IsOrder        bool           // counts as an order: bumps orders_count and order dates
	OrderTotal     float64        // added to total_spent, in currency units
}

// Ingested says what IngestEvent did.
type Ingested struct {
	EventID     int64
	Duplicate   bool      // the idempotency key was seen before; nothing changed
	NewCustomer bool      // the customer was created in InitialStage
	Customer    *Customer // the customer's facts right after this event; nil for a duplicate
}

// IngestEvent stores an event and folds it into its customer's facts. A new
// customer is created in initialStage and that entry is logged as a stage
// transition stamped with version. A duplicate idempotency key changes
// nothing and returns the first event's id. Run it in a transaction (WithTx)
// together with the evaluate job insert.
func (s *Store) IngestEvent(ctx context.Context, e *NewEvent, initialStage, version string) (Ingested, error) {
	var res Ingested
	if err := s.db.QueryRow(ctx, q("LockCustomer"), e.CustomerID, initialStage, e.OccurredAt).Scan(&res.NewCustomer); err != nil {
		return res, fmt.Errorf("lock customer %q: %w", e.CustomerID, err)
	}

	props := e.Properties
	if props == nil {
		props = map[string]any{}
	}
	rows, err := s.db.Query(ctx, q("InsertEvent"), e.CustomerID, e.Type, props, e.OccurredAt, e.ReceivedAt, e.IdempotencyKey)
	if err != nil {
		return res, fmt.Errorf("insert event: %w", err)
	}
	for rows.Next() {
		if err := rows.Scan(&res.EventID); err != nil {
			rows.Close()
			return res, fmt.Errorf("insert event: %w", err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("insert event: %w", err)
	}
	if res.EventID == 0 {
		res.Duplicate = true
		if err := s.db.QueryRow(ctx, q("GetEventIDByKey"), e.CustomerID, e.IdempotencyKey).Scan(&res.EventID); err != nil {
			return res, fmt.Errorf("find event for idempotency key %q: %w", e.IdempotencyKey, err)
		}
		return res, nil
	}

	if res.NewCustomer && initialStage != "" {
		if err := s.InsertTransition(ctx, &Transition{
			CustomerID: e.CustomerID, To: initialStage, RuleSetVersion: version, OccurredAt: e.OccurredAt,
		}); err != nil {
			return res, err
		}
	}
	attrs := e.Attributes
	if attrs == nil {
		attrs = map[string]any{}
	}
	res.Customer, err = scanCustomer(s.db.QueryRow(ctx, q("ApplyEventFacts"), e.CustomerID, e.Email, e.Name, e.Timezone,
		e.OccurredAt, e.IsOrder, cents(e.OrderTotal), attrs, res.EventID))
	if err != nil {
		return res, fmt.Errorf("update customer %q facts: %w", e.CustomerID, err)
	}
	return res, nil
}

// PendingEvent is an event awaiting evaluation with the facts its rules see.
type PendingEvent struct {
	Event
	Facts *Customer // the customer right after this event
}

// factsJSON is the snapshot as to_jsonb(customers row) writes it.
type factsJSON struct {
	ID              string         `json:"id"`
	Email           string         `json:"email"`
	Name            string         `json:"name"`
	Timezone        string         `json:"timezone"`
	Stage           string         `json:"stage"`
	StageEnteredAt  *time.Time     `json:"stage_entered_at"`
	CreatedAt       time.Time      `json:"created_at"`
	LastSeenAt      *time.Time     `json:"last_seen_at"`
	FirstOrderAt    *time.Time     `json:"first_order_at"`
	LastOrderAt     *time.Time     `json:"last_order_at"`
	OrdersCount     int            `json:"orders_count"`
	TotalSpentCents int64          `json:"total_spent_cents"`
	Attributes      map[string]any `json:"attributes"`
	UnsubscribedAt  *time.Time     `json:"unsubscribed_at"`
}

func (f *factsJSON) customer() *Customer {
	return &Customer{
		ID: f.ID, Email: f.Email, Name: f.Name, Timezone: f.Timezone, Stage: f.Stage,
		StageEnteredAt: timeOrZero(f.StageEnteredAt), CreatedAt: f.CreatedAt, LastSeenAt: timeOrZero(f.LastSeenAt),
		FirstOrderAt: timeOrZero(f.FirstOrderAt), LastOrderAt: timeOrZero(f.LastOrderAt), OrdersCount: f.OrdersCount,
		TotalSpent: float64(f.TotalSpentCents) / 100, Attributes: f.Attributes, UnsubscribedAt: timeOrZero(f.UnsubscribedAt),
	}
}

// LockForEvaluation locks the customer's row until the transaction ends and
// returns its current stage, so that one customer's events are evaluated one
// at a time. It returns ErrCustomerNotFound if there is none.
func (s *Store) LockForEvaluation(ctx context.Context, customerID string) (string, error) {
	var stage string
	if err := s.db.QueryRow(ctx, q("LockCustomerStage"), customerID).Scan(&stage); err != nil {
		return "", fmt.Errorf("lock customer %q: %w", customerID, wrapNoRows(err, ErrCustomerNotFound))
	}
	return stage, nil
}

// PendingEvents returns the customer's events not evaluated yet with ids up
// to upTo, oldest first.
func (s *Store) PendingEvents(ctx context.Context, customerID string, upTo int64) ([]*PendingEvent, error) {
	rows, err := s.db.Query(ctx, q("PendingEvents"), customerID, upTo)
	if err != nil {
		return nil, fmt.Errorf("pending events of %q: %w", customerID, err)
	}
	defer rows.Close()
	var out []*PendingEvent
	for rows.Next() {
		var (
			e     PendingEvent
			facts *factsJSON
		)
		if err := rows.Scan(&e.ID, &e.Type, &e.Properties, &e.OccurredAt, &facts); err != nil {
			return nil, fmt.Errorf("pending events of %q: %w", customerID, err)
		}
		e.CustomerID = customerID
		if facts != nil {
			e.Facts = facts.customer()
		}
		out = append(out, &e)
	}
	return out, rows.Err()
}

// MarkEvaluated records that the events' rules ran.
func (s *Store) MarkEvaluated(ctx context.Context, customerID string, ids []int64, at time.Time) error {
	if _, err := s.db.Exec(ctx, q("MarkEvaluated"), customerID, ids, at); err != nil {
		return fmt.Errorf("mark events of %q evaluated: %w", customerID, err)
	}
	return nil
}
