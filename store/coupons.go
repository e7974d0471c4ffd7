package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Coupon errors callers test for with errors.Is.
var (
	// ErrCouponCodeTaken is returned by InsertCoupon when the code exists already.
	ErrCouponCodeTaken = errors.New("coupon code taken")
	// ErrCouponNotFound is returned by RedeemCoupon when the customer has no
	// coupon with the code.
	ErrCouponNotFound = errors.New("coupon not found")
	// ErrCouponRedeemed is matched (errors.Is) by a *CouponRedeemedError.
	ErrCouponRedeemed = errors.New("coupon already redeemed")
)

// CouponRedeemedError is returned by RedeemCoupon for a coupon that was
// redeemed before.
type CouponRedeemedError struct {
	CustomerID string
	Code       string    // the code as stored (upper case)
	RedeemedAt time.Time // when it was redeemed
}

func (e *CouponRedeemedError) Error() string {
	return fmt.Sprintf("coupon %q of customer %q was already redeemed at %s", e.Code, e.CustomerID, e.RedeemedAt.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrCouponRedeemed) hold.
func (e *CouponRedeemedError) Is(target error) bool { return target == ErrCouponRedeemed }

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

// InsertCoupon stores c and sets c.ID. Codes are stored in upper case (c.Code
// is set to the stored code) so that they match whatever the case they are
// typed in; a code collision, whatever the case, returns
// ErrCouponCodeTaken and leaves a surrounding transaction usable, so the
// caller can draw another code.
func (s *Store) InsertCoupon(ctx context.Context, c *Coupon) error {
	c.Code = strings.ToUpper(c.Code)
	err := s.db.QueryRow(ctx, q("InsertCoupon"), c.Code, c.CustomerID, c.Rule, c.FiringID, c.Kind, c.Value,
		c.CreatedAt, nullTime(c.ExpiresAt)).Scan(&c.ID)
	if errors.Is(err, pgx.ErrNoRows) {
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

// RedeemCoupon marks the customer's coupon with this code redeemed at `at`
// and refreshes the customer's coupon_expires_at. The code matches whatever
// its case and surrounding spaces. It returns ErrCouponNotFound when the
// customer has no such coupon, and a *CouponRedeemedError (changing nothing)
// when it was redeemed before. Run it in the transaction that stores the
// event.
func (s *Store) RedeemCoupon(ctx context.Context, customerID, code string, at time.Time) error {
	var (
		stored string
		before *time.Time
	)
	err := s.db.QueryRow(ctx, q("RedeemCoupon"), customerID, strings.TrimSpace(code), at).Scan(&stored, &before)
	if err != nil {
		return fmt.Errorf("redeem coupon of %q: %w", customerID, wrapNoRows(err, ErrCouponNotFound))
	}
	if before != nil {
		return &CouponRedeemedError{CustomerID: customerID, Code: stored, RedeemedAt: *before}
	}
	return s.RefreshCouponExpiry(ctx, []string{customerID}, at)
}

// RefreshCouponExpiry recomputes the customers' coupon_expires_at as of now.
func (s *Store) RefreshCouponExpiry(ctx context.Context, customerIDs []string, now time.Time) error {
	if _, err := s.db.Exec(ctx, q("RefreshCouponExpiry"), customerIDs, now); err != nil {
		return fmt.Errorf("refresh coupon expiry of %d customers: %w", len(customerIDs), err)
	}
	return nil
}

// ExpireCoupons claims up to limit unredeemed coupons that expired by now
// and were not reported yet, marking them reported. Run it in the
// transaction that records their events (InsertCouponExpiredEvents).
func (s *Store) ExpireCoupons(ctx context.Context, now time.Time, limit int) ([]*Coupon, error) {
	rows, err := s.db.Query(ctx, q("ExpireCoupons"), now, limit)
	if err != nil {
		return nil, fmt.Errorf("claim expired coupons: %w", err)
	}
	defer rows.Close()
	var out []*Coupon
	for rows.Next() {
		var c Coupon
		if err := rows.Scan(&c.ID, &c.Code, &c.CustomerID, &c.Rule, &c.FiringID, &c.Kind, &c.Value, &c.CreatedAt, &c.ExpiresAt); err != nil {
			return nil, fmt.Errorf("claim expired coupons: %w", err)
		}
		out = append(out, &c)
	}
	return out, rows.Err()
}

// EventRef names one stored event.
type EventRef struct {
	CustomerID string
	ID         int64
}

// InsertCouponExpiredEvents records a coupon_expired event (properties:
// code, rule, kind, value, expires_at) for each coupon, at most once per
// code, and returns the events written, to be evaluated.
func (s *Store) InsertCouponExpiredEvents(ctx context.Context, cs []*Coupon, receivedAt time.Time) ([]EventRef, error) {
	n := len(cs)
	cust, code, rule, kind := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	value, expires := make([]float64, n), make([]time.Time, n)
	for i, c := range cs {
		cust[i], code[i], rule[i], kind[i], value[i], expires[i] = c.CustomerID, c.Code, c.Rule, c.Kind, c.Value, c.ExpiresAt
	}
	rows, err := s.db.Query(ctx, q("InsertCouponExpiredEvents"), cust, code, rule, kind, value, expires, receivedAt)
	if err != nil {
		return nil, fmt.Errorf("record %d coupon_expired events: %w", n, err)
	}
	defer rows.Close()
	var out []EventRef
	for rows.Next() {
		var e EventRef
		if err := rows.Scan(&e.CustomerID, &e.ID); err != nil {
			return nil, fmt.Errorf("record %d coupon_expired events: %w", n, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
