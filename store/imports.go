package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ImportCustomer is one customer of a backfill.
type ImportCustomer struct {
	Line      int // the file's line, for error messages
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
	Line       int
	CustomerID string
	OrderID    string
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

// ImportCustomers upserts one batch of customers through a staging table
// (COPY, then one set-based statement). New customers start in their
// stage or initialStage, existing ones take what the file gives; stage
// changes are logged as transitions stamped version. It must run in a
// transaction (the staging table lives until commit). It returns how many
// customers it created and updated; a row identical to what is stored
// counts as neither.
func ImportCustomers(ctx context.Context, tx pgx.Tx, rows []ImportCustomer, initialStage, version string, at time.Time) (created, updated int64, err error) {
	if _, err := tx.Exec(ctx, q("CreateImportCustomersTable")); err != nil {
		return 0, 0, fmt.Errorf("stage customers: %w", err)
	}
	src := pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		r := &rows[i]
		attrs := r.Attributes
		if attrs == nil {
			attrs = map[string]any{}
		}
		return []any{r.Line, r.ID, r.Email, r.Name, r.Timezone, nullTime(r.CreatedAt), r.Stage, attrs}, nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"import_customers"},
		[]string{"line", "id", "email", "name", "timezone", "created_at", "stage", "attributes"}, src); err != nil {
		return 0, 0, fmt.Errorf("copy %d customers: %w", len(rows), err)
	}
	if err := tx.QueryRow(ctx, q("UpsertImportCustomers"), initialStage, at, version).Scan(&created, &updated); err != nil {
		return 0, 0, fmt.Errorf("upsert %d customers: %w", len(rows), err)
	}
	return created, updated, nil
}

// ImportOrders stores one batch of orders as events marked evaluated, so
// that no event rule fires for history, and folds the ones not imported
// before into the customers' facts; customers it names that do not exist
// are created in initialStage. It must run in a transaction and returns how
// many orders were new.
func ImportOrders(ctx context.Context, tx pgx.Tx, rows []ImportOrder, initialStage, version string, at time.Time) (int64, error) {
	if _, err := tx.Exec(ctx, q("CreateImportOrdersTable")); err != nil {
		return 0, fmt.Errorf("stage orders: %w", err)
	}
	src := pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		r := &rows[i]
		return []any{r.Line, r.CustomerID, r.OrderID, r.Type, r.Properties, r.TotalCents, r.Counted, r.OrderedAt}, nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"import_orders"},
		[]string{"line", "customer_id", "order_id", "type", "properties", "total_cents", "counted", "ordered_at"}, src); err != nil {
		return 0, fmt.Errorf("copy %d orders: %w", len(rows), err)
	}
	if _, err := tx.Exec(ctx, q("CreateImportOrderCustomers"), initialStage, version); err != nil {
		return 0, fmt.Errorf("create customers of %d orders: %w", len(rows), err)
	}
	var n int64
	if err := tx.QueryRow(ctx, q("InsertImportOrders"), at).Scan(&n); err != nil {
		return 0, fmt.Errorf("insert %d orders: %w", len(rows), err)
	}
	return n, nil
}
