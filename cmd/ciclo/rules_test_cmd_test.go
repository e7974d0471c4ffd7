package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/smtptest"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
)

// seedCustomer ingests a signed_up event for a new customer through the
// store's ingest path (customer row, event, initial transition).
func seedCustomer(t *testing.T, db *testdb.DB, id, email string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		_, err := store.New(tx).IngestEvent(ctx, &store.NewEvent{
			CustomerID: id, Type: "signed_up", IdempotencyKey: "signup-" + id, OccurredAt: at, ReceivedAt: at,
			Email: email, Name: "Ana",
		}, "reach", "seed")
		return err
	}))
}

// rowCounts counts the rows of every table in the test schema, River's included.
func rowCounts(t *testing.T, db *testdb.DB) map[string]int {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(),
		"SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'", db.Schema)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, tables, "river_job")
	require.Contains(t, tables, "rule_firings")
	out := map[string]int{}
	for _, table := range tables {
		out[table] = db.Count(t, pgx.Identifier{table}.Sanitize(), "")
	}
	return out
}

func TestRulesTest(t *testing.T) {
	t.Parallel()

	const rulesFile = "testdata/rulestest/rules.yaml"
	signup := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

	setup := func(t *testing.T) (*testdb.DB, *smtptest.Server) {
		t.Helper()
		db := testdb.New(t)
		seedCustomer(t, db, "c-1", "ana@example.com", signup)
		return db, smtptest.Start(t)
	}

	t.Run("EventExplainsEachConditionAndChangesNothing", func(t *testing.T) {
		t.Parallel()
		db, smtp := setup(t)
		before := rowCounts(t, db)

		stdout, stderr, code := runCLI(t, "rules", "test", rulesFile, "--database-url", db.URL,
			"--customer", "c-1", "--event", filepath.Join("testdata", "rulestest", "order.json"), "--at", "2025-03-02T12:00:00Z")
		require.Equal(t, 0, code, stderr)

		require.Equal(t, before, rowCounts(t, db), "rules test must not write")
		require.Empty(t, smtp.Messages(), "rules test must not send")
		require.Equal(t, 0, db.Count(t, "river_job", ""))

		require.Contains(t, stdout, "event: order_placed {\"total\":42.5}\n")
		require.Contains(t, stdout, "customer: stage reach, orders_count 1, total_spent 42.50, last_order_at 2025-03-02T12:00:00Z, email \"ana@example.com\"\n")
		require.Contains(t, stdout, "-    welcome (on signed_up): not triggered\n")
		require.Contains(t, stdout, `FIRE first-order-bonus (on order_placed)
       when customer.orders_count == 1 && event.properties.total >= 20  = true
         customer.orders_count == 1  = true
         event.properties.total >= 20  = true
       -> stage: reach -> conversion
       -> coupon: 10% off (percent 10), expires 2025-03-16T12:00:00Z
       -> email "first_order_bonus" to ana@example.com
          Subject: A gift for your first order
`)
		require.Contains(t, stdout, "          | Your code: PREVIEW-CODE\n")
		require.Contains(t, stdout, `       -> webhook POST https://crm.example.com/hooks/ciclo
          {"type":"rule.fired","rule":"first-order-bonus","rule_set_version":"`)
		require.Contains(t, stdout, `"customer":{"id":"c-1","email":"ana@example.com","name":"Ana","stage":"conversion","orders_count":1,"total_spent":42.5},"coupon":{"code":"PREVIEW-CODE","kind":"percent","value":10,"expires_at":"2025-03-16T12:00:00Z"}`)
		require.Contains(t, stdout, `no   repeat-purchase (on order_placed)
       when customer.orders_count >= 2 && customer.stage in ["conversion", "at_risk"]  = false
         customer.orders_count >= 2  = false
         customer.stage in ["conversion", "at_risk"]  = false
`)
		require.Contains(t, stdout, "-    at-risk-60d (schedule \"0 9 * * *\"): not triggered\n")
		require.Contains(t, stdout, "1 rule(s) would fire. Nothing was written or sent (read-only transaction).\n")
	})

	t.Run("JourneyShowsSteps", func(t *testing.T) {
		t.Parallel()
		db, _ := setup(t)
		before := rowCounts(t, db)
		stdout, stderr, code := runCLI(t, "rules", "test", filepath.Join("testdata", "rulestest", "journey.yaml"), "--database-url", db.URL,
			"--customer", "c-1", "--event", filepath.Join("testdata", "rulestest", "checkout.json"), "--at", "2025-03-02T12:00:00Z")
		require.Equal(t, 0, code, stderr)
		require.Equal(t, before, rowCounts(t, db), "rules test must not write")
		require.Contains(t, stdout, `       journey run (no awaited event comes):
         2025-03-02 12:00  wait 1h0m0s
         2025-03-02 13:00  email welcome
         2025-03-02 13:00  wait for cart_updated within 24h0m0s (none comes: timeout)
         2025-03-03 13:00  if customer.orders_count == 0: true
         2025-03-03 13:00  coupon percent 5
         2025-03-03 13:00  email win_back
         2025-03-03 13:00  done
`)
	})

	t.Run("NoEventEvaluatesScheduledRules", func(t *testing.T) {
		t.Parallel()
		db, smtp := setup(t)
		before := rowCounts(t, db)

		stdout, stderr, code := runCLI(t, "rules", "test", rulesFile, "--database-url", db.URL,
			"--customer", "c-1", "--at", "2025-06-01")
		require.Equal(t, 0, code, stderr)
		require.Equal(t, before, rowCounts(t, db))
		require.Empty(t, smtp.Messages())
		require.Contains(t, stdout, `no   at-risk-60d (schedule "0 9 * * *")
       when days_since(customer.last_order_at) >= 60 || customer.stage == "acquisition"  = false
         days_since(customer.last_order_at) >= 60  = false
         customer.stage == "acquisition"  = false
`)
		require.Contains(t, stdout, "0 rule(s) would fire.")
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		db, _ := setup(t)
		stdout, stderr, code := runCLI(t, "rules", "test", rulesFile, "--database-url", db.URL, "--format", "json",
			"--customer", "c-1", "--event", filepath.Join("testdata", "rulestest", "order.json"), "--at", "2025-03-02T12:00:00Z")
		require.Equal(t, 0, code, stderr)
		var rep struct {
			Customer map[string]any `json:"customer"`
			Rules    []struct {
				Rule      string `json:"rule"`
				Matched   bool   `json:"matched"`
				Condition struct {
					Operands []struct {
						Source string `json:"source"`
						Value  any    `json:"value"`
					} `json:"operands"`
				} `json:"condition"`
			} `json:"rules"`
		}
		require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
		require.Equal(t, float64(1), rep.Customer["orders_count"])
		require.Equal(t, "first-order-bonus", rep.Rules[1].Rule)
		require.True(t, rep.Rules[1].Matched)
		require.Equal(t, "event.properties.total >= 20", rep.Rules[1].Condition.Operands[1].Source)
		require.Equal(t, true, rep.Rules[1].Condition.Operands[1].Value)
	})

	t.Run("UnknownCustomer", func(t *testing.T) {
		t.Parallel()
		db, _ := setup(t)
		_, stderr, code := runCLI(t, "rules", "test", rulesFile, "--database-url", db.URL, "--customer", "nobody")
		require.Equal(t, 1, code)
		require.Equal(t, "ciclo: get customer \"nobody\": customer not found\n", stderr)
	})
}
