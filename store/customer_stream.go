package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// CustomersPageDefault is how many customers EachCustomer reads per query.
const CustomersPageDefault = 5000

// FiringExists reports whether rule already fired for the customer and
// occurrence: what the firing guard would say, without writing.
func (s *Store) FiringExists(ctx context.Context, customerID, rule, occurrence string) (bool, error) {
	var ok bool
	if err := s.db.QueryRow(ctx, q("FiringExists"), customerID, rule, occurrence).Scan(&ok); err != nil {
		return false, fmt.Errorf("check firing of %q for %q: %w", rule, customerID, err)
	}
	return ok, nil
}

// EachCustomer calls fn for every customer in id order, reading pages of
// CustomersPageDefault by key so memory stays flat in the number of
// customers. With sample > 0 it visits a random sample of that many
// instead. Run it in a (read-only, repeatable read) transaction for a
// consistent view. An error from fn stops the walk and is returned.
func (s *Store) EachCustomer(ctx context.Context, sample int, fn func(*Customer) error) error {
	if sample > 0 {
		rows, err := s.db.Query(ctx, q("SampleCustomers"), sample)
		if err != nil {
			return fmt.Errorf("sample customers: %w", err)
		}
		_, err = eachRow(rows, fn)
		return err
	}
	after := ""
	for {
		rows, err := s.db.Query(ctx, q("ListCustomersAfter"), after, CustomersPageDefault)
		if err != nil {
			return fmt.Errorf("list customers after %q: %w", after, err)
		}
		last, err := eachRow(rows, fn)
		if err != nil {
			return err
		}
		if last == "" {
			return nil
		}
		after = last
	}
}

// eachRow scans customer rows into fn and returns the last id seen.
func eachRow(rows pgx.Rows, fn func(*Customer) error) (string, error) {
	defer rows.Close()
	last := ""
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return "", fmt.Errorf("read customer: %w", err)
		}
		if err := fn(c); err != nil {
			return "", err
		}
		last = c.ID
	}
	return last, rows.Err()
}
