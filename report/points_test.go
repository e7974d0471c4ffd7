package report_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/report"
	"github.com/ciclohq/ciclo/store"
)

// TestLifecyclePoints checks the points figures against a ledger computed
// by hand. Before the range: +100 granted, −30 spent (net 70). January:
// +200 granted, −50 spent, −40 expired: liability 70 + 200 − 50 − 40 = 180.
// February: a refund's reversal −60 with a debt −10 and an adjustment −5,
// all spent: 75; liability 180 − 75 = 105. A grant on March 1st is outside
// [from, to).
func TestLifecyclePoints(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO customers (id, stage, created_at) VALUES ('x', 'reach', '2025-11-01')`)
	require.NoError(t, err)
	for _, e := range []struct {
		kind   string
		amount int64
		at     string
	}{
		{"grant", 100, "2025-12-10"}, {"spend", -30, "2025-12-20"},
		{"grant", 200, "2026-01-05"}, {"spend", -50, "2026-01-06"}, {"expire", -40, "2026-01-31T23:59:59Z"},
		{"reverse", -60, "2026-02-03"}, {"debt", -10, "2026-02-03"}, {"adjust", -5, "2026-02-10"},
		{"grant", 999, "2026-03-01"},
	} {
		_, err := db.Pool.Exec(ctx, `INSERT INTO points_entries (customer_id, kind, amount, created_at) VALUES ('x', $1, $2, $3::timestamptz)`,
			e.kind, e.amount, e.at)
		require.NoError(t, err)
	}
	rep, err := report.Build(ctx, store.New(db.Pool), fixtureParams)
	require.NoError(t, err)
	require.Len(t, rep.Periods, 2)
	require.Equal(t, report.Points{Granted: 200, Spent: 50, Expired: 40, Liability: 180}, rep.Periods[0].Points)
	require.Equal(t, report.Points{Granted: 0, Spent: 75, Expired: 0, Liability: 105}, rep.Periods[1].Points)

	var table, csv bytes.Buffer
	require.NoError(t, rep.WriteTable(&table))
	require.Contains(t, table.String(), "2026-02  0        75     0        105")
	require.NoError(t, rep.WriteCSV(&csv))
	require.Contains(t, csv.String(), "points,2026-01-01,,liability,180\n")
}
