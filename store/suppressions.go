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
	// SuppressErased is kept, as a hash of the address, for a person whose
	// data was erased: they get no email at all, not even transactional.
	SuppressErased = "erased"
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

// Unsubscribe suppresses email as unsubscribed (replacing an earlier reason)
// and marks unsubscribed the customer the link was made for and every
// customer with that address. Run it in a transaction.
func (s *Store) Unsubscribe(ctx context.Context, customerID, email string, at time.Time) error {
	if _, err := s.db.Exec(ctx, q("AddUnsubscribe"), email, at); err != nil {
		return fmt.Errorf("suppress address: %w", err)
	}
	if _, err := s.db.Exec(ctx, q("UnsubscribeCustomers"), email, at, customerID); err != nil {
		return fmt.Errorf("unsubscribe customers: %w", err)
	}
	return nil
}

// Suppression is an address ciclo does not mail.
type Suppression struct {
	Email     string
	Reason    string // SuppressUnsubscribed, SuppressBounced or SuppressManual
	Detail    string
	CreatedAt time.Time
}

// InsertSuppression suppresses an address and returns its suppression. If the
// address was suppressed already, the existing row is returned unchanged and
// created is false.
func (s *Store) InsertSuppression(ctx context.Context, sp Suppression) (_ *Suppression, created bool, err error) {
	var out Suppression
	err = s.db.QueryRow(ctx, q("InsertSuppression"), sp.Email, sp.Reason, sp.Detail, sp.CreatedAt).
		Scan(&out.Email, &out.Reason, &out.Detail, &out.CreatedAt)
	if err == nil {
		return &out, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, fmt.Errorf("suppress address: %w", err)
	}
	err = s.db.QueryRow(ctx, q("GetSuppressionRow"), sp.Email).Scan(&out.Email, &out.Reason, &out.Detail, &out.CreatedAt)
	if err != nil {
		return nil, false, fmt.Errorf("read suppression: %w", err)
	}
	return &out, false, nil
}

// RemoveSuppression lifts an address's suppression, whatever its reason.
// When the reason was an unsubscribe it also clears the unsubscribed mark of
// customers with that address (they opted in again); lifting a bounce or a
// manual entry never re-subscribes anyone. It returns ErrSuppressionNotFound
// if the address was not suppressed.
func (s *Store) RemoveSuppression(ctx context.Context, email string) error {
	var n int
	if err := s.db.QueryRow(ctx, q("DeleteSuppression"), email).Scan(&n); err != nil {
		return fmt.Errorf("lift suppression: %w", err)
	}
	if n == 0 {
		return ErrSuppressionNotFound
	}
	return nil
}

// GetSuppression reads an address's suppression. It returns
// ErrSuppressionNotFound if the address is not suppressed.
func (s *Store) GetSuppression(ctx context.Context, email string) (*Suppression, error) {
	var out Suppression
	err := s.db.QueryRow(ctx, q("GetSuppressionRow"), email).Scan(&out.Email, &out.Reason, &out.Detail, &out.CreatedAt)
	if err != nil {
		return nil, fmt.Errorf("read suppression: %w", wrapNoRows(err, ErrSuppressionNotFound))
	}
	return &out, nil
}
