package csvimport_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/csvimport"
	"github.com/ciclohq/ciclo/internal/testdb"
)

var stages = []string{"reach", "acquisition", "conversion", "retention", "loyalty", "at_risk", "churned"}

func TestRun(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	opts := func(kind string, bad *[]string) csvimport.RunOptions {
		return csvimport.RunOptions{
			Kind: kind, Stages: stages, InitialStage: "reach", Version: "v-test", Now: now, BatchSize: 7000,
			OnBadRow: func(e *csvimport.RowError) { *bad = append(*bad, e.Error()) },
		}
	}

	// 100k customers; every 1,000th row has a broken email, every 1,777th
	// names a stage that does not exist.
	const n = 100_000
	var (
		file    strings.Builder
		wantBad []string
	)
	file.WriteString("id,email,name,timezone,created_at,stage,accepts_marketing,plan\n")
	for i := range n {
		line := i + 2
		email, stage := fmt.Sprintf("c%d@example.com", i), ""
		switch {
		case i%1000 == 999:
			email = "broken"
			wantBad = append(wantBad, fmt.Sprintf(`line %d: email: "broken" is not a valid email address`, line))
		case i%1777 == 1776:
			stage = "gold"
			wantBad = append(wantBad, fmt.Sprintf(`line %d: stage: "gold" is not a stage of the rules file; stages are: %s`, line, strings.Join(stages, ", ")))
		case i%10 == 0:
			stage = "retention"
		}
		fmt.Fprintf(&file, "c%d,%s,Customer %d,Europe/Madrid,2024-01-%02d,%s,%t,p%d\n", i, email, i, i%28+1, stage, i%2 == 0, i%3)
	}
	var bad []string
	sum, err := csvimport.Run(ctx, db.Pool, strings.NewReader(file.String()), opts(csvimport.KindCustomers, &bad))
	require.NoError(t, err)
	t.Logf("imported %d customer rows in %s (%.0f rows/s)", n, sum.Elapsed, float64(n)/sum.Elapsed.Seconds())
	require.Equal(t, wantBad, bad, "every bad row is reported with its line")
	good := int64(n - len(wantBad))
	require.Equal(t, csvimport.Summary{Rows: n, Good: good, Bad: int64(len(wantBad)), Created: good, Elapsed: sum.Elapsed}, sum)
	require.EqualValues(t, good, db.Count(t, "customers", ""))
	require.EqualValues(t, good, db.Count(t, "stage_transitions", "from_stage IS NULL AND rule_set_version = 'v-test'"))
	require.Equal(t, 1, db.Count(t, "customers", `id = 'c10' AND stage = 'retention' AND email = 'c10@example.com'
		AND created_at = '2024-01-11T00:00:00Z' AND attributes = '{"plan": "p1", "accepts_email_marketing": true}'`))
	require.Equal(t, 0, db.Count(t, "customers", "id = 'c999'"), "a bad row is not imported")

	t.Run("ReRunChangesNothing", func(t *testing.T) {
		var bad []string
		again, err := csvimport.Run(ctx, db.Pool, strings.NewReader(file.String()), opts(csvimport.KindCustomers, &bad))
		require.NoError(t, err)
		require.Zero(t, again.Created)
		require.Zero(t, again.Updated)
		require.Equal(t, good, again.Unchanged())
		require.EqualValues(t, good, db.Count(t, "stage_transitions", ""))
	})

	t.Run("Orders", func(t *testing.T) {
		orders := "customer_id,order_id,total,currency,ordered_at,status\n" +
			"c1,o-1,40.00,EUR,2026-06-01T10:00:00Z,completed\n" +
			"c1,o-2,2.50,EUR,2026-09-02T10:00:00Z,\n" + // 90 days before now
			"c1,o-3,99.00,EUR,2026-09-10T10:00:00Z,cancelled\n" +
			"new-1,o-4,10,EUR,2025-01-01,\n" + // a customer only the orders file knows
			"c2,o-5,1.999,EUR,2026-01-01,\n" + // bad: sub-cent
			"c1,o-1,40.00,EUR,2026-06-01T10:00:00Z,completed\n" // the same order twice
		var bad []string
		sum, err := csvimport.Run(ctx, db.Pool, strings.NewReader(orders), opts(csvimport.KindOrders, &bad))
		require.NoError(t, err)
		require.Equal(t, []string{`line 6: total: invalid amount "1.999": EUR has 2 decimals`}, bad)
		require.EqualValues(t, 4, sum.Created)
		require.Equal(t, 1, db.Count(t, "customers", `id = 'c1' AND orders_count = 2 AND total_spent_cents = 4250
			AND first_order_at = '2026-06-01T10:00:00Z' AND last_order_at = '2026-09-02T10:00:00Z'
			AND last_seen_at = '2026-09-10T10:00:00Z'`))
		require.Equal(t, 1, db.Count(t, "customers", `id = 'new-1' AND stage = 'reach' AND orders_count = 1
			AND created_at = '2025-01-01T00:00:00Z'`))
		require.Equal(t, 1, db.Count(t, "events", "customer_id = 'c1' AND type = 'order_cancelled'"))
		require.Zero(t, db.Count(t, "events", "evaluated_at IS NULL"), "history is never evaluated by event rules")
		require.Zero(t, db.Count(t, "river_job", ""), "an import queues no job: nothing is evaluated or sent")
		require.Zero(t, db.Count(t, "deliveries", ""))

		again, err := csvimport.Run(ctx, db.Pool, strings.NewReader(orders), opts(csvimport.KindOrders, &bad))
		require.NoError(t, err)
		require.Zero(t, again.Created)
		require.Equal(t, 1, db.Count(t, "customers", "id = 'c1' AND orders_count = 2 AND total_spent_cents = 4250"), "a re-run adds nothing")
	})

	t.Run("RepeatedID", func(t *testing.T) {
		// A repeated id starts a new batch, so the later row is applied on top
		// of the earlier one, as two imports in file order would.
		var bad []string
		file := "id,email,stage,plan\nr1,r1@example.com,,gold\nr2,r2@example.com,,\nr1,r1-new@example.com,loyalty,\n"
		sum, err := csvimport.Run(ctx, db.Pool, strings.NewReader(file), opts(csvimport.KindCustomers, &bad))
		require.NoError(t, err)
		require.Empty(t, bad)
		require.Equal(t, int64(2), sum.Created)
		require.Equal(t, int64(1), sum.Updated)
		require.Equal(t, 1, db.Count(t, "customers", `id = 'r1' AND email = 'r1-new@example.com' AND stage = 'loyalty' AND attributes = '{"plan": "gold"}'`))
		require.Equal(t, 1, db.Count(t, "stage_transitions", "customer_id = 'r1' AND from_stage = 'reach' AND to_stage = 'loyalty'"))
	})

	t.Run("Strict", func(t *testing.T) {
		var bad []string
		o := opts(csvimport.KindCustomers, &bad)
		o.Strict = true
		_, err := csvimport.Run(ctx, db.Pool, strings.NewReader("id,email\nz1,z1@example.com\nz2,nope\nz3,z3@example.com\n"), o)
		require.ErrorIs(t, err, csvimport.ErrStrict)
		require.ErrorContains(t, err, "line 3: email")
		require.Equal(t, 1, db.Count(t, "customers", "id = 'z1'"), "rows before the bad one land")
		require.Zero(t, db.Count(t, "customers", "id = 'z3'"), "rows after it do not")
	})
}
