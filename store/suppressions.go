package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Suppression reasons.
const (
	SuppressUnsubscribed = "unsubscribed"
	SuppressBounced      = "bounced"
	SuppressManual       = "manual"
)

// AddSuppression suppresses email for a reason; an address already
// suppressed keeps its first reason.
func (s *Store) AddSuppression(ctx context.Context, email, reason, detail string, at time.Time) error {
	if _, err := s.db.Exec(ctx, q("AddSuppression"), email, reason, detail, at); err != nil {
		return fmt.Errorf("suppress address: %w", err)
	}
	return nil
}

// Suppressed returns why email is suppressed, or "" if it is not.
func (s *Store) Suppressed(ctx context.Context, email string) (string, error) {
	var reason string
	err := s.db.QueryRow(ctx, q("GetSuppression"), email).Scan(&reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("check suppression: %w", err)
	}
	return reason, nil
}

// Unsubscribe suppresses email and marks its customers unsubscribed.
func (s *Store) Unsubscribe(ctx context.Context, email string, at time.Time) error {
	if err := s.AddSuppression(ctx, email, SuppressUnsubscribed, "", at); err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, q("UnsubscribeCustomers"), email, at); err != nil {
		return fmt.Errorf("unsubscribe customers: %w", err)
	}
	return nil
}
