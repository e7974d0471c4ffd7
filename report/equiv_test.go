package report_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
)

// The per-row definitions of conversion and time in stage, as the report
// first computed them (an index probe per customer entering a stage or
// leaving one). The set-based queries in reports.sql must give the same rows.
const (
	conversionByProbe = `
WITH steps AS (
    SELECT * FROM unnest($4::text[], $5::text[]) AS s (a, b)
), entered AS (
    SELECT s.a, s.b, t.customer_id, date_trunc($1::text, t.occurred_at AT TIME ZONE 'UTC') AS period, min(t.occurred_at) AS at
    FROM stage_transitions t JOIN steps s ON t.to_stage = s.a
    WHERE t.occurred_at >= $2 AND t.occurred_at < $3
    GROUP BY 1, 2, 3, 4
)
SELECT period, a, b, count(*),
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM stage_transitions r
           WHERE r.customer_id = e.customer_id AND r.to_stage = e.b
             AND r.occurred_at >= e.at AND r.occurred_at <= e.at + $6::bigint * interval '1 millisecond'))
FROM entered e
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3`
	timeInStageByProbe = `
SELECT t.from_stage, count(*),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t.occurred_at - e.occurred_at))
FROM stage_transitions t
CROSS JOIN LATERAL (
    SELECT p.occurred_at FROM stage_transitions p
    WHERE p.customer_id = t.customer_id AND p.to_stage = t.from_stage
      AND (p.occurred_at < t.occurred_at OR (p.occurred_at = t.occurred_at AND p.id < t.id))
    ORDER BY p.occurred_at DESC, p.id DESC
    LIMIT 1
) e
WHERE t.from_stage IS NOT NULL AND t.occurred_at >= $1 AND t.occurred_at < $2
GROUP BY 1
ORDER BY 1`
)

// TestReportQueriesMatchProbes runs conversion and time in stage over a
// random, messy transition log — stages skipped, re-entered and left again,
// self-transitions, several transitions at the same instant, entries before
// the range and after it — and checks that the set-based queries return
// exactly the rows of the per-row definitions.
func TestReportQueriesMatchProbes(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(12, 16))
	stages := []string{"reach", "acquisition", "conversion", "retention", "churned"}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var rows [][]any
	for c := range 400 {
		id := "c" + string(rune('a'+c%26)) + time.Duration(c).String()
		_, err := db.Pool.Exec(ctx, `INSERT INTO customers (id, email, stage) VALUES ($1, $1 || '@example.com', 'reach')`, id)
		require.NoError(t, err)
		var from any
		at := base.Add(-time.Duration(rng.IntN(40*24)) * time.Hour)
		for range 1 + rng.IntN(8) {
			to := stages[rng.IntN(len(stages))]
			rows = append(rows, []any{id, from, to, at})
			from = to
			if rng.IntN(4) > 0 { // a quarter of the next transitions at the same instant
				at = at.Add(time.Duration(rng.IntN(50*24)) * time.Hour)
			}
		}
	}
	_, err := db.Pool.CopyFrom(ctx, pgx.Identifier{"stage_transitions"},
		[]string{"customer_id", "from_stage", "to_stage", "occurred_at"}, pgx.CopyFromRows(rows))
	require.NoError(t, err)

	st := store.New(db.Pool)
	from, to := base, base.AddDate(0, 4, 0)
	steps := [][2]string{{"reach", "acquisition"}, {"acquisition", "conversion"}, {"conversion", "retention"},
		{"reach", "conversion"}, {"churned", "churned"}}
	a, b := make([]string, len(steps)), make([]string, len(steps))
	for i, s := range steps {
		a[i], b[i] = s[0], s[1]
	}
	for _, period := range []string{"week", "month"} {
		for _, window := range []time.Duration{0, 30 * 24 * time.Hour} {
			got, err := st.ReportConversion(ctx, period, from, to, steps, window)
			require.NoError(t, err)
			want, err := pgx.CollectRows(must(db.Pool.Query(ctx, conversionByProbe, period, from, to, a, b, window.Milliseconds())),
				func(r pgx.CollectableRow) (store.ConversionCount, error) {
					var c store.ConversionCount
					err := r.Scan(&c.Period, &c.From, &c.To, &c.Entered, &c.Converted)
					return c, err
				})
			require.NoError(t, err)
			require.NotEmpty(t, want)
			require.Equal(t, want, got, "conversion by %s, window %s", period, window)
		}
	}
	got, err := st.ReportTimeInStage(ctx, from, to)
	require.NoError(t, err)
	want, err := pgx.CollectRows(must(db.Pool.Query(ctx, timeInStageByProbe, from, to)),
		func(r pgx.CollectableRow) (store.StageTime, error) {
			var s store.StageTime
			err := r.Scan(&s.Stage, &s.Left, &s.MedianSeconds)
			return s, err
		})
	require.NoError(t, err)
	require.Len(t, want, len(stages))
	require.Equal(t, want, got, "time in stage")
}

func must(r pgx.Rows, err error) pgx.Rows {
	if err != nil {
		panic(err)
	}
	return r
}
