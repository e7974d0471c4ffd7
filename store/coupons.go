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
	if c.Code == "" {
		return fmt.Errorf("insert coupon for %q: no code", c.CustomerID)
	}
	c.ID = 0
	cc := newCouponColumns([]*Coupon{c}, nil)
	if err := s.insertCouponColumns(ctx, &cc); err != nil {
		return fmt.Errorf("insert coupon for %q: %w", c.CustomerID, err)
	}
	if c.ID == 0 {
		return ErrCouponCodeTaken
	}
	return nil
}

// insertCoupons stores the coupons of firings written already (the ones
// whose first codes were taken), drawing their codes with newCode, up to
// attempts draws each.
func (s *Store) insertCoupons(ctx context.Context, pending []*Coupon, newCode func() string, attempts int) error {
	for try := 0; len(pending) > 0; try++ {
		if try == attempts {
			return fmt.Errorf("issue %d coupons: code collisions in %d tries", len(pending), try+1)
		}
		for _, c := range pending {
			c.Code = ""
		}
		cc := newCouponColumns(pending, newCode)
		if err := s.insertCouponColumns(ctx, &cc); err != nil {
			return fmt.Errorf("issue %d coupons: %w", len(pending), err)
		}
		var again []*Coupon
		for _, c := range pending {
			if c.ID == 0 {
				again = append(again, c)
			}
		}
		pending = again
	}
	return nil
}

// insertCouponColumns runs InsertCoupons and sets the ids of the coupons
// stored; the others' codes were taken.
func (s *Store) insertCouponColumns(ctx context.Context, cc *couponColumns) error {
	rows, err := s.db.Query(ctx, q("InsertCoupons"), cc.code, cc.customer, cc.rule, cc.firing, cc.kind, cc.value, cc.created, cc.expires)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id   int64
			code string
		)
		if err := rows.Scan(&id, &code); err != nil {
			return err
		}
		cc.stored(code, id)
	}
	return rows.Err()
}

// couponColumns are coupons as the columns of one insert. A coupon whose
// code is "" gets one drawn; one whose code another coupon of the batch has
// already is left out (included lists the coupons in, by index), so that
// each code names one coupon and a retry draws it again.
type couponColumns struct {
	included                   []int
	code, customer, rule, kind []string
	firing                     []int64
	value                      []float64
	created                    []time.Time
	expires                    []*time.Time
	byCode                     map[string]*Coupon
}

func newCouponColumns(cs []*Coupon, newCode func() string) couponColumns {
	n := len(cs)
	cc := couponColumns{
		included: make([]int, 0, n), code: make([]string, 0, n), customer: make([]string, 0, n), rule: make([]string, 0, n),
		kind: make([]string, 0, n), firing: make([]int64, 0, n), value: make([]float64, 0, n), created: make([]time.Time, 0, n),
		expires: make([]*time.Time, 0, n), byCode: make(map[string]*Coupon, n),
	}
	for i, c := range cs {
		if c.Code == "" {
			c.Code = newCode()
		}
		if _, dup := cc.byCode[c.Code]; dup {
			continue
		}
		cc.byCode[c.Code] = c
		cc.included = append(cc.included, i)
		cc.code = append(cc.code, c.Code)
		cc.customer = append(cc.customer, c.CustomerID)
		cc.rule = append(cc.rule, c.Rule)
		cc.kind = append(cc.kind, c.Kind)
		cc.firing = append(cc.firing, c.FiringID)
		cc.value = append(cc.value, c.Value)
		cc.created = append(cc.created, c.CreatedAt)
		cc.expires = append(cc.expires, nullTime(c.ExpiresAt))
	}
	return cc
}

// stored notes that the coupon with code was stored with id.
func (cc *couponColumns) stored(code string, id int64) {
	if c := cc.byCode[code]; c != nil {
		c.ID = id
	}
}

// CouponsByFiring returns the coupons a firing issued, oldest first.
func (s *Store) CouponsByFiring(ctx context.Context, customerID string, firingID int64) ([]*Coupon, error) {
	rows, err := s.db.Query(ctx, q("GetCouponsByFiring"), customerID, firingID)
	if err != nil {
		return nil, fmt.Errorf("coupons of firing %d: %w", firingID, err)
	}
	out, err := scanCoupons(rows)
	if err != nil {
		return nil, fmt.Errorf("coupons of firing %d: %w", firingID, err)
	}
	return out, nil
}

// CustomerCoupons returns a customer's coupons, newest first.
func (s *Store) CustomerCoupons(ctx context.Context, customerID string) ([]*Coupon, error) {
	rows, err := s.db.Query(ctx, q("GetCustomerCoupons"), customerID)
	if err != nil {
		return nil, fmt.Errorf("coupons of customer %q: %w", customerID, err)
	}
	out, err := scanCoupons(rows)
	if err != nil {
		return nil, fmt.Errorf("coupons of customer %q: %w", customerID, err)
	}
	return out, nil
}

func scanCoupons(rows pgx.Rows) ([]*Coupon, error) {
	defer rows.Close()
	var out []*Coupon
	for rows.Next() {
		var (
			c                 Coupon
			expires, redeemed *time.Time
		)
		if err := rows.Scan(&c.ID, &c.Code, &c.CustomerID, &c.Rule, &c.FiringID, &c.Kind, &c.Value,
			&c.CreatedAt, &expires, &redeemed); err != nil {
			return nil, err
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
