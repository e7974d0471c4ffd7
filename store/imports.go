package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ImportCustomer is one customer of a backfill.
type ImportCustomer struct {
	ID        string
	Email     string
	Name      string
	Timezone  string
	CreatedAt time.Time // zero: the import's time for a new customer
	// Stage, when set, moves the customer there (logged as a transition).
	Stage string
	// Attributes are merged into the customer's.
	Attributes map[string]any
}

// ImportOrder is one order of a backfill.
type ImportOrder struct {
	CustomerID string
	// Key is the idempotency key of its event, derived from the order id.
	Key string
	// Type is the event it is stored as (order_placed, order_cancelled…).
	Type string
	// Properties are the event's properties.
	Properties map[string]any
	// TotalCents is what it adds to total spent when Counted.
	TotalCents int64
	// Counted orders add to orders_count, first/last order and total spent.
	Counted   bool
	OrderedAt time.Time
}

// importSource streams one batch of rows into a staging table's COPY: next
// returns the next row's values, or nil at the end of the batch. It is
// called from pgx's COPY goroutine while earlier rows are on their way, so
// reading and checking the file overlaps with Postgres storing it.
type importSource struct {
	next func() ([]any, error)
	row  []any
	err  error
}

func (s *importSource) Next() bool {
	if s.err != nil {
		return false
	}
	s.row, s.err = s.next()
	return s.err == nil && s.row != nil
}

func (s *importSource) Values() ([]any, error) { return s.row, nil }
func (s *importSource) Err() error             { return s.err }

// stage creates a staging table and copies one batch into it.
func stage(ctx context.Context, tx pgx.Tx, create, table string, cols []string, next func() ([]any, error)) (int64, error) {
	// A big batch joined against a big customers table costs enough for the
	// planner to JIT-compile it, which takes longer than running it. The
	// upsert's sorts and hashes of a batch fit in 64MB instead of spilling to
	// temporary files at the default 4MB. An import transaction does not wait
	// for its commit to be flushed: a crash can lose only the last batches
	// the import reported as done, never leave one half applied, and a
	// transaction that read them (a sweep's firing) flushes them with its own
	// commit, which comes later in the WAL; re-running the file, which is
	// idempotent, brings lost batches back. Both cut the statement's CPU time by about a tenth.
	if _, err := tx.Exec(ctx, "SET LOCAL jit = off; SET LOCAL work_mem = '64MB'; SET LOCAL synchronous_commit = off"); err != nil {
		return 0, fmt.Errorf("stage %s: %w", table, err)
	}
	if _, err := tx.Exec(ctx, q(create)); err != nil {
		return 0, fmt.Errorf("stage %s: %w", table, err)
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, &importSource{next: next})
	if err != nil {
		return n, fmt.Errorf("copy %s: %w", table, err)
	}
	return n, nil
}

// ImportCustomers upserts one batch of customers, the ones next returns
// until it returns nil, through a staging table (COPY, then one set-based
// statement). The batch's ids must be distinct. New customers start in
// their stage or initialStage, existing ones take what the file gives;
// entries into a stage are logged as transitions stamped version. It must
// run in a transaction (the staging table lives until commit). It returns
// how many customers it created and updated; a row identical to what is
// stored counts as neither and is not written.
func ImportCustomers(ctx context.Context, tx pgx.Tx, next func() (*ImportCustomer, error), initialStage, version string, at time.Time) (created, updated int64, err error) {
	n, err := stage(ctx, tx, "CreateImportCustomersTable", "import_customers",
		[]string{"id", "email", "name", "timezone", "created_at", "stage", "attributes"},
		func() ([]any, error) {
			r, err := next()
			if r == nil || err != nil {
				return nil, err
			}
			attrs := r.Attributes
			if attrs == nil {
				attrs = map[string]any{}
			}
			return []any{r.ID, r.Email, r.Name, r.Timezone, nullTime(r.CreatedAt), r.Stage, attrs}, nil
		})
	if err != nil || n == 0 {
		return 0, 0, err
	}
	if err := tx.QueryRow(ctx, q("UpsertImportCustomers"), initialStage, at, version).Scan(&created, &updated); err != nil {
		return 0, 0, fmt.Errorf("upsert %d customers: %w", n, err)
	}
	return created, updated, nil
}

// ImportOrders stores one batch of orders, the ones next returns until it
// returns nil, as events marked evaluated, so that no event rule fires for
// history, and folds the ones not imported before into the customers'
// facts; customers it names that do not exist are created in initialStage
// (a transition stamped version). The batch's (customer, order) pairs must
// be distinct. It must run in a transaction and returns how many orders
// were new.
func ImportOrders(ctx context.Context, tx pgx.Tx, next func() (*ImportOrder, error), initialStage, version string, at time.Time) (int64, error) {
	n, err := stage(ctx, tx, "CreateImportOrdersTable", "import_orders",
		[]string{"customer_id", "key", "type", "properties", "total_cents", "counted", "ordered_at"},
		func() ([]any, error) {
			r, err := next()
			if r == nil || err != nil {
				return nil, err
			}
			return []any{r.CustomerID, r.Key, r.Type, r.Properties, r.TotalCents, r.Counted, r.OrderedAt}, nil
		})
	if err != nil || n == 0 {
		return 0, err
	}
	var created int64
	if err := tx.QueryRow(ctx, q("UpsertImportOrders"), at, initialStage, version).Scan(&created); err != nil {
		return 0, fmt.Errorf("insert %d orders: %w", n, err)
	}
	return created, nil
}
