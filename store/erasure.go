package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Erased is what an erasure did.
type Erased struct {
	// AnonymousID is the id the customer's history now lives under.
	AnonymousID string
	// OutboxFiles are the .eml files its emails were written to; the caller
	// deletes them (the store does no file I/O).
	OutboxFiles []string
}

// ErasedAddressHash is how an erased address is kept in suppressions.
func ErasedAddressHash(email string) string {
	return erasedHashOfLower(strings.ToLower(email))
}

// erasedHashOfLower is ErasedAddressHash of an address already lower-cased
// (as SQL's lower() does it, for addresses read from the database).
func erasedHashOfLower(lower string) string {
	sum := sha256.Sum256([]byte(lower))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// AnonymousID is the id an erased customer's history moves to: a hash, so
// no one can read the store's id (which can be an email) back from it.
func AnonymousID(customerID string) string {
	sum := sha256.Sum256([]byte(customerID))
	return "erased:" + hex.EncodeToString(sum[:12])
}

// EraseCustomer removes a person's personal data from every table: the
// customer row is replaced by an anonymous one with the same stage and facts
// (so aggregate metrics stay), every customer-keyed row moves to it, events
// lose their contact properties and fact snapshots, deliveries lose the
// servers' replies, River jobs naming the customer are dropped, and the
// address is kept only as a hash in suppressions so that the person is never
// mailed again. It must run in a transaction; it waits for the sends to the
// customer in flight (see SendGuard). ErrCustomerNotFound when there is no
// such customer.
func (s *Store) EraseCustomer(ctx context.Context, customerID string, at time.Time) (Erased, error) {
	tx := s.db
	// First, before anything is anonymised: wait for the sends in flight to
	// this customer, and make later ones wait for the commit (SendGuard).
	if _, err := tx.Exec(ctx, q("LockErasureExclusive"), customerID); err != nil {
		return Erased{}, fmt.Errorf("erase %q: wait for sends in flight: %w", customerID, err)
	}
	var email string
	err := tx.QueryRow(ctx, q("LockCustomerForErasure"), customerID).Scan(&email)
	if errors.Is(err, pgx.ErrNoRows) {
		return Erased{}, ErrCustomerNotFound
	}
	if err != nil {
		return Erased{}, fmt.Errorf("erase %q: %w", customerID, err)
	}
	anon := AnonymousID(customerID)
	if email != "" {
		if _, err := tx.Exec(ctx, q("SuppressErasedAddress"), email, at); err != nil {
			return Erased{}, fmt.Errorf("erase %q: suppress address: %w", customerID, err)
		}
	}
	if _, err := tx.Exec(ctx, q("CreateErasedCustomer"), customerID, anon, at); err != nil {
		return Erased{}, fmt.Errorf("erase %q: create anonymous customer: %w", customerID, err)
	}
	if _, err := tx.Exec(ctx, q("MoveErasedEvents"), customerID, anon); err != nil {
		return Erased{}, fmt.Errorf("erase %q: events: %w", customerID, err)
	}
	rows, err := tx.Query(ctx, q("MoveErasedDeliveries"), customerID, anon)
	if err != nil {
		return Erased{}, fmt.Errorf("erase %q: deliveries: %w", customerID, err)
	}
	files, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return Erased{}, fmt.Errorf("erase %q: deliveries: %w", customerID, err)
	}
	rows, err = tx.Query(ctx, q("CustomerKeyedTables"))
	if err != nil {
		return Erased{}, fmt.Errorf("erase %q: list tables: %w", customerID, err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return Erased{}, fmt.Errorf("erase %q: list tables: %w", customerID, err)
	}
	for _, table := range tables {
		// table is a regclass as Postgres prints it: already quoted where needed.
		if _, err := tx.Exec(ctx, "UPDATE "+table+" SET customer_id = $2 WHERE customer_id = $1", customerID, anon); err != nil {
			return Erased{}, fmt.Errorf("erase %q: move rows of %s: %w", customerID, table, err)
		}
	}
	// Last, after every move: moving the rows above fired the report triggers,
	// which logged the erased id in report_dirty once more.
	if _, err := tx.Exec(ctx, q("MoveErasedReportRows"), customerID, anon); err != nil {
		return Erased{}, fmt.Errorf("erase %q: report rollups: %w", customerID, err)
	}
	if _, err := tx.Exec(ctx, q("DeleteErasedJobs"), customerID); err != nil {
		return Erased{}, fmt.Errorf("erase %q: jobs: %w", customerID, err)
	}
	if _, err := tx.Exec(ctx, q("DeleteErasedCustomer"), customerID); err != nil {
		return Erased{}, fmt.Errorf("erase %q: delete customer: %w", customerID, err)
	}
	return Erased{AnonymousID: anon, OutboxFiles: files}, nil
}
