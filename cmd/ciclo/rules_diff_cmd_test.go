package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
)

// seedOrders ingests orders of the given totals for a new customer.
func seedOrders(t *testing.T, db *testdb.DB, id string, totals ...float64) {
	t.Helper()
	ctx := context.Background()
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	seedCustomer(t, db, id, id+"@example.com", at)
	for i, total := range totals {
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			_, err := store.New(tx).IngestEvent(ctx, &store.NewEvent{
				CustomerID: id, Type: "order_placed", IdempotencyKey: fmt.Sprintf("o-%s-%d", id, i),
				OccurredAt: at.Add(time.Duration(i+1) * time.Hour), ReceivedAt: at,
				Properties: map[string]any{"total": total}, IsOrder: true, OrderTotal: total,
			}, "reach", "seed")
			return err
		}))
	}
}

func TestRulesDiff(t *testing.T) {
	t.Parallel()

	db := testdb.New(t)
	seedOrders(t, db, "c-1")
	seedOrders(t, db, "c-2", 50)
	seedOrders(t, db, "c-3", 150)
	seedOrders(t, db, "c-4", 20, 30)
	before := rowCounts(t, db)

	t.Run("AllCustomers", func(t *testing.T) {
		stdout, stderr, code := runCLI(t, "rules", "diff", "--database-url", db.URL, "--at", "2025-06-01",
			"testdata/rulesdiff/old.yaml", "testdata/rulesdiff/new.yaml")
		require.Equal(t, 0, code, stderr)
		require.Regexp(t, `^rules [0-9a-f]{12} -> [0-9a-f]{12}, evaluated on 4 customers\n`, stdout)
		require.Contains(t, stdout, `
rule "big-spender": matches 3 customers (was 1) — this change would email 3 customers
rule "any-order" (added): matches 3 customers — this change would issue coupons to 3 customers
rule "bye" (removed): matched 1 customers; they will no longer get it
`)
		require.NotContains(t, stdout, `"welcome"`)
	})

	t.Run("Sample", func(t *testing.T) {
		stdout, stderr, code := runCLI(t, "rules", "diff", "--database-url", db.URL, "--sample", "2",
			"testdata/rulesdiff/old.yaml", "testdata/rulesdiff/new.yaml")
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "evaluated on a random sample of 2 customers\n")
	})

	t.Run("SameFile", func(t *testing.T) {
		stdout, _, code := runCLI(t, "rules", "diff", "--database-url", db.URL,
			"testdata/rulesdiff/old.yaml", "testdata/rulesdiff/old.yaml")
		require.Equal(t, 0, code)
		require.Contains(t, stdout, "no rule was added, removed or changed\n")
	})

	require.Equal(t, before, rowCounts(t, db), "rules diff must not write")
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 41203: "41,203", 1234567: "1,234,567", -1200: "-1,200"} {
		require.Equal(t, want, thousands(n))
	}
}
