package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DeliveryOutcome is where a delivery stands, for metrics.
type DeliveryOutcome struct {
	Status string
	// SentAt is when it was handed to its channel; zero unless sent.
	SentAt time.Time
	// OriginAt is when the event that fired its rule was received, or when
	// the rule fired for scheduled rules.
	OriginAt time.Time
}

// GetDeliveryOutcome reads a delivery's outcome. It returns
// ErrDeliveryNotFound if there is none.
func (s *Store) GetDeliveryOutcome(ctx context.Context, customerID string, id int64) (*DeliveryOutcome, error) {
	var (
		o      DeliveryOutcome
		sentAt *time.Time
	)
	err := s.db.QueryRow(ctx, q("DeliveryOutcome"), customerID, id).Scan(&o.Status, &sentAt, &o.OriginAt)
	if err != nil {
		return nil, fmt.Errorf("get outcome of delivery %d: %w", id, wrapNoRows(err, ErrDeliveryNotFound))
	}
	if sentAt != nil {
		o.SentAt = *sentAt
	}
	return &o, nil
}

// QueueCount is the number of River jobs in one queue and state.
type QueueCount struct {
	Queue string
	State string
	Count int64
}

// QueueDepth counts River's jobs by queue and state, leaving out completed
// ones. schema is River's schema; "" means the search path.
func (s *Store) QueueDepth(ctx context.Context, schema string) ([]QueueCount, error) {
	prefix := ""
	if schema != "" {
		prefix = pgx.Identifier{schema}.Sanitize() + "."
	}
	rows, err := s.db.Query(ctx, fmt.Sprintf(q("QueueDepth"), prefix))
	if err != nil {
		return nil, fmt.Errorf("count jobs by queue: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (QueueCount, error) {
		var c QueueCount
		err := r.Scan(&c.Queue, &c.State, &c.Count)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("count jobs by queue: %w", err)
	}
	return out, nil
}
