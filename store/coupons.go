package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrCouponCodeTaken is returned by InsertCoupon when the code exists already.
var ErrCouponCodeTaken = errors.New("coupon code taken")

// Coupon is an issued coupon.
type Coupon struct {
	ID         int64
	Code       string
	CustomerID string
	Rule       string
	FiringID   int64
	Kind       string // percent, amount or free_shipping
	Value      float64
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never expires
	RedeemedAt time.Time // zero: not redeemed
}

// InsertCoupon stores c and sets c.ID. A code collision returns
// ErrCouponCodeTaken; in a transaction, use a savepoint to retry.
func (s *Store) InsertCoupon(ctx context.Context, c *Coupon) error {
	err := s.db.QueryRow(ctx, q("InsertCoupon"), c.Code, c.CustomerID, c.Rule, c.FiringID, c.Kind, c.Value,
		c.CreatedAt, nullTime(c.ExpiresAt)).Scan(&c.ID)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "coupons_code_key" {
		return ErrCouponCodeTaken
	}
	if err != nil {
		return fmt.Errorf("insert coupon for %q: %w", c.CustomerID, err)
	}
	return nil
}

// CouponsByFiring returns the coupons a firing issued, oldest first.
func (s *Store) CouponsByFiring(ctx context.Context, customerID string, firingID int64) ([]*Coupon, error) {
	rows, err := s.db.Query(ctx, q("GetCouponsByFiring"), customerID, firingID)
	if err != nil {
		return nil, fmt.Errorf("coupons of firing %d: %w", firingID, err)
	}
	defer rows.Close()
	var out []*Coupon
	for rows.Next() {
		var (
			c                 Coupon
			expires, redeemed *time.Time
		)
		if err := rows.Scan(&c.ID, &c.Code, &c.CustomerID, &c.Rule, &c.FiringID, &c.Kind, &c.Value,
			&c.CreatedAt, &expires, &redeemed); err != nil {
			return nil, fmt.Errorf("coupons of firing %d: %w", firingID, err)
		}
		c.ExpiresAt, c.RedeemedAt = timeOrZero(expires), timeOrZero(redeemed)
		out = append(out, &c)
	}
	return out, rows.Err()
}
