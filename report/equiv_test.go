package report_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/report"
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
	ids := make([]string, 0, 400)
	for _, r := range rows {
		ids = append(ids, r[0].(string))
	}
	steps := [][2]string{{"reach", "acquisition"}, {"acquisition", "conversion"}, {"conversion", "retention"},
		{"reach", "conversion"}, {"churned", "churned"}}
	a, b := make([]string, len(steps)), make([]string, len(steps))
	for i, s := range steps {
		a[i], b[i] = s[0], s[1]
	}
	check := func(phase string) {
		t.Helper()
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
				require.Equal(t, want, got, "%s: conversion by %s, window %s", phase, period, window)
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
		require.Equal(t, want, got, "%s: time in stage", phase)
	}
	late := func(n int) [][]any {
		var out [][]any
		for range n {
			out = append(out, []any{ids[rng.IntN(len(ids))], stages[rng.IntN(len(stages))], stages[rng.IntN(len(stages))], lateInstant(rng, base)})
		}
		return out
	}
	probe := func(st *store.Store) any {
		c, err := st.ReportConversion(ctx, "month", from, to, steps, 30*24*time.Hour)
		require.NoError(t, err)
		s, err := st.ReportTimeInStage(ctx, from, to)
		require.NoError(t, err)
		return []any{c, s}
	}
	checkRollups(t, db.Pool, check, probe, func(tx pgx.Tx, n int) {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"stage_transitions"}, []string{"customer_id", "from_stage", "to_stage", "occurred_at"}, pgx.CopyFromRows(late(n)))
		require.NoError(t, err)
	})
}

func must(r pgx.Rows, err error) pgx.Rows {
	if err != nil {
		panic(err)
	}
	return r
}

// The per-row definitions of attribution, flows, repeat purchase and cohort
// cells, as the report first computed them (a probe per order, DISTINCT and
// GROUP BY customer). The one-pass queries in reports.sql must give the
// same rows.
const (
	revenueByProbe = `
SELECT r.rule, count(*), COALESCE(sum(CASE WHEN jsonb_typeof(e.properties->'total') = 'number'
                                         THEN (e.properties->>'total')::numeric END), 0)::float8
FROM events e
CROSS JOIN LATERAL (
    SELECT DISTINCT f.rule FROM rule_firings f
    WHERE f.customer_id = e.customer_id AND f.fired_at < e.occurred_at
      AND f.fired_at >= e.occurred_at - $4::bigint * interval '1 millisecond'
) r
WHERE e.type = ANY($3::text[]) AND e.occurred_at >= $1 AND e.occurred_at < $2
GROUP BY 1
ORDER BY 1`
	flowsByDistinct = `
SELECT CASE WHEN occurred_at >= $2 THEN date_trunc($1::text, occurred_at AT TIME ZONE 'UTC') END,
       COALESCE(from_stage, ''), to_stage, count(*),
       count(DISTINCT customer_id) FILTER (WHERE occurred_at >= $2)
FROM stage_transitions
WHERE occurred_at < $3
GROUP BY 1, 2, 3
ORDER BY 1 NULLS FIRST, 2, 3`
	repeatByGroup = `
SELECT period, count(*) FILTER (WHERE n >= 2), count(*)
FROM (
    SELECT date_trunc($1::text, occurred_at AT TIME ZONE 'UTC') AS period, customer_id, count(*) AS n
    FROM events
    WHERE type = ANY($4::text[]) AND occurred_at >= $2 AND occurred_at < $3
    GROUP BY 1, 2
) o
GROUP BY 1
ORDER BY 1`
	// scoresByRow is ReportScores as first written, per answer.
	scoresByRow = `
WITH k AS (
    SELECT * FROM unnest($4::text[], $5::numeric[], $6::numeric[], $7::numeric[], $8::numeric[]) AS k (type, lo, hi, high, low)
)
SELECT date_trunc($1::text, e.occurred_at AT TIME ZONE 'UTC'), e.type,
       count(*) FILTER (WHERE (e.properties->>'score')::numeric >= k.high),
       count(*) FILTER (WHERE (e.properties->>'score')::numeric <= k.low), count(*)
FROM events e JOIN k ON k.type = e.type
WHERE e.occurred_at >= $2 AND e.occurred_at < $3 AND jsonb_typeof(e.properties->'score') = 'number'
  AND (e.properties->>'score')::numeric BETWEEN k.lo AND k.hi
GROUP BY 1, 2
ORDER BY 1, 2`
	cohortCellsByDistinct = `
SELECT cohort, k, count(*)
FROM (
    SELECT DISTINCT date_trunc('month', c.first_order_at AT TIME ZONE 'UTC') AS cohort,
           ((date_part('year', e.occurred_at AT TIME ZONE 'UTC') - date_part('year', c.first_order_at AT TIME ZONE 'UTC')) * 12
            + date_part('month', e.occurred_at AT TIME ZONE 'UTC') - date_part('month', c.first_order_at AT TIME ZONE 'UTC'))::int AS k,
           c.id
    FROM customers c
    JOIN events e ON e.customer_id = c.id
    WHERE c.first_order_at >= $1 AND c.first_order_at < $2
      AND e.type = ANY($3::text[]) AND e.occurred_at < $4
      AND e.occurred_at >= (date_trunc('month', c.first_order_at AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
) x
GROUP BY 1, 2
ORDER BY 1, 2`
)

// TestOrderQueriesMatchDefinitions runs attribution, flows, repeat purchase
// and cohort cells over a random, messy history — orders at the same
// instant, several in a period, two order types, firings of a rule close
// together so that their windows overlap, repeated stage changes in one
// period, history before the range — and checks that the one-pass queries
// return exactly the rows of the per-row definitions.
func TestOrderQueriesMatchDefinitions(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 9))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	stages := []string{"reach", "acquisition", "conversion", "churned"}
	var events, firings, transitions [][]any
	for c := range 300 {
		id := fmt.Sprintf("c%03d", c)
		at := base.Add(-time.Duration(rng.IntN(60*24)) * time.Hour)
		var first *time.Time
		for range rng.IntN(7) {
			at = at.Add(time.Duration(rng.IntN(30*24)) * time.Hour)
			typ := []string{"order_placed", "order_placed", "pos_sale", "page_view"}[rng.IntN(4)]
			if typ != "page_view" && first == nil {
				v := at
				first = &v
			}
			props := map[string]any{"total": rng.IntN(100)}
			if rng.IntN(5) == 0 {
				props = map[string]any{"total": "n/a"}
			}
			events = append(events, []any{id, typ, at, props})
			if rng.IntN(2) == 0 { // a survey answer: NPS or CSAT, some scores out of range or not numbers
				events = append(events, []any{id, []string{"nps_answered", "csat_answered"}[rng.IntN(2)], at.Add(time.Duration(rng.IntN(48)) * time.Hour),
					map[string]any{"score": []any{rng.IntN(13) - 1, "9", 2.5}[min(rng.IntN(6), 2)]}})
			}
		}
		_, err := db.Pool.Exec(ctx, `INSERT INTO customers (id, email, stage, first_order_at) VALUES ($1, $1 || '@example.com', 'reach', $2)`, id, first)
		require.NoError(t, err)
		fired := base.Add(-time.Duration(rng.IntN(20*24)) * time.Hour)
		for n := range rng.IntN(5) {
			fired = fired.Add(time.Duration(rng.IntN(10*24)) * time.Hour) // some at the same instant
			firings = append(firings, []any{id, []string{"welcome", "win-back"}[rng.IntN(2)], fmt.Sprint("o", n), "v1", fired})
		}
		var from any
		moved := base.Add(-time.Duration(rng.IntN(40*24)) * time.Hour)
		for range 1 + rng.IntN(6) {
			to := stages[rng.IntN(len(stages))]
			transitions = append(transitions, []any{id, from, to, moved})
			from = to
			moved = moved.Add(time.Duration(rng.IntN(20*24)) * time.Hour)
		}
	}
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"events", []string{"customer_id", "type", "occurred_at", "properties"}, events},
		{"rule_firings", []string{"customer_id", "rule", "occurrence", "rule_set_version", "fired_at"}, firings},
		{"stage_transitions", []string{"customer_id", "from_stage", "to_stage", "occurred_at"}, transitions},
	} {
		_, err := db.Pool.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows))
		require.NoError(t, err, c.table)
	}

	st := store.New(db.Pool)
	from, to, now := base, base.AddDate(0, 4, 0), base.AddDate(0, 5, 0)
	surveys := []store.Survey{{Event: "nps_answered", Lo: 0, Hi: 10, High: 9, Low: 6}, {Event: "csat_answered", Lo: 1, Hi: 5, High: 4, Low: 3}}
	orders := []string{"order_placed", "pos_sale"}
	ids := make([]string, 0, 300)
	for c := range 300 {
		ids = append(ids, fmt.Sprintf("c%03d", c))
	}
	check := func(phase string) {
		t.Helper()
		for _, window := range []time.Duration{0, 24 * time.Hour, 7 * 24 * time.Hour} {
			got, err := st.ReportRuleRevenue(ctx, from, to, orders, window)
			require.NoError(t, err)
			want := collect(t, db.Pool, revenueByProbe, func(r pgx.CollectableRow, c *store.RuleRevenue) error {
				return r.Scan(&c.Rule, &c.Orders, &c.Revenue)
			}, from, to, orders, window.Milliseconds())
			if window > 0 {
				require.NotEmpty(t, want)
			}
			require.Equal(t, want, got, "%s: attribution, window %s", phase, window)
		}
		for _, period := range []string{"week", "month"} {
			got, err := st.ReportStageFlows(ctx, period, from, to)
			require.NoError(t, err)
			want := collect(t, db.Pool, flowsByDistinct, func(r pgx.CollectableRow, f *store.Flow) error {
				return r.Scan(&f.Period, &f.From, &f.To, &f.Transitions, &f.Customers)
			}, period, from, to)
			require.NotEmpty(t, want)
			require.Equal(t, want, got, "%s: flows by %s", phase, period)

			for _, types := range [][]string{orders, orders[:1]} {
				got, err := st.ReportRepeat(ctx, period, from, to, types)
				require.NoError(t, err)
				want := collect(t, db.Pool, repeatByGroup, func(r pgx.CollectableRow, c *store.RepeatCount) error {
					return r.Scan(&c.Period, &c.Repeat, &c.Buyers)
				}, period, from, to, types)
				require.NotEmpty(t, want)
				require.Equal(t, want, got, "%s: repeat purchase by %s, orders %v", phase, period, types)
			}
		}
		for _, period := range []string{"week", "month"} {
			got, err := st.ReportScores(ctx, period, from, to, surveys)
			require.NoError(t, err)
			want := collect(t, db.Pool, scoresByRow, func(r pgx.CollectableRow, c *store.ScoreCount) error {
				return r.Scan(&c.Period, &c.Event, &c.High, &c.Low, &c.Answers)
			}, period, from, to, []string{"nps_answered", "csat_answered"}, []float64{0, 1}, []float64{10, 5}, []float64{9, 4}, []float64{6, 3})
			require.NotEmpty(t, want)
			require.Equal(t, want, got, "%s: scores by %s", phase, period)
		}
		got, err := st.ReportCohorts(ctx, base.AddDate(0, -2, 0), to, orders, now)
		require.NoError(t, err)
		var cells []store.CohortCount
		for _, c := range got {
			if c.K > 0 {
				cells = append(cells, c)
			}
		}
		want := collect(t, db.Pool, cohortCellsByDistinct, func(r pgx.CollectableRow, c *store.CohortCount) error {
			return r.Scan(&c.Cohort, &c.K, &c.Customers)
		}, base.AddDate(0, -2, 0), to, orders, now)
		require.NotEmpty(t, want)
		require.Equal(t, want, cells, "%s: cohort cells", phase)
	}
	probe := func(st *store.Store) any {
		f, err := st.ReportStageFlows(ctx, "month", from, to)
		require.NoError(t, err)
		r, err := st.ReportRepeat(ctx, "month", from, to, orders)
		require.NoError(t, err)
		v, err := st.ReportRuleRevenue(ctx, from, to, orders, 7*24*time.Hour)
		require.NoError(t, err)
		sc, err := st.ReportScores(ctx, "month", from, to, surveys)
		require.NoError(t, err)
		return []any{f, r, v, sc}
	}
	checkRollups(t, db.Pool, check, probe, func(tx pgx.Tx, n int) {
		var events, firings, transitions [][]any
		for i := range n {
			id := ids[rng.IntN(len(ids))]
			events = append(events, []any{id, []string{"order_placed", "pos_sale", "page_view"}[rng.IntN(3)], lateInstant(rng, base),
				map[string]any{"total": rng.IntN(100)}})
			firings = append(firings, []any{id, []string{"welcome", "win-back"}[rng.IntN(2)], fmt.Sprint("late", rng.Int64(), i), "v1", lateInstant(rng, base)})
			events = append(events, []any{id, "nps_answered", lateInstant(rng, base), map[string]any{"score": rng.IntN(11)}})
			transitions = append(transitions, []any{id, stages[rng.IntN(len(stages))], stages[rng.IntN(len(stages))], lateInstant(rng, base)})
		}
		for _, c := range []struct {
			table string
			cols  []string
			rows  [][]any
		}{
			{"events", []string{"customer_id", "type", "occurred_at", "properties"}, events},
			{"rule_firings", []string{"customer_id", "rule", "occurrence", "rule_set_version", "fired_at"}, firings},
			{"stage_transitions", []string{"customer_id", "from_stage", "to_stage", "occurred_at"}, transitions},
		} {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows))
			require.NoError(t, err, c.table)
		}
	})
}

// collect runs a reference query and scans its rows.
func collect[T any](t *testing.T, pool *pgxpool.Pool, sql string, scan func(pgx.CollectableRow, *T) error, args ...any) []T {
	t.Helper()
	rows, err := pgx.CollectRows(must(pool.Query(context.Background(), sql, args...)), func(r pgx.CollectableRow) (T, error) {
		var v T
		err := scan(r, &v)
		return v, err
	})
	require.NoError(t, err)
	if len(rows) == 0 {
		return nil // as the store returns no rows
	}
	return rows
}

// rollupConfig is what the equivalence tests fold the rollups for: the
// conversion and attribution windows and order types some of their calls
// use (the others read raw rows).
var rollupConfig = store.RollupConfig{ConversionWindow: 30 * 24 * time.Hour, AttributionWindow: 7 * 24 * time.Hour,
	OrderTypes: []string{"order_placed", "pos_sale"}, ScoreTypes: []string{"nps_answered", "csat_answered"}}

// checkRollups runs check — every report query against its per-row
// definition — on the raw rows (never folded), on the rollups after a full
// fold, after late rows arrive (write adds n rows at random and boundary
// instants, old ones included: first not folded, then folded), and around
// rows committed out of order: a transaction that writes (taking the lower
// ids) before a fold runs and commits after it. It also checks that the
// rollups are read: probe's figures change when the rollups' do.
func checkRollups(t *testing.T, pool *pgxpool.Pool, check func(phase string), probe func(*store.Store) any, write func(tx pgx.Tx, n int)) {
	t.Helper()
	ctx := context.Background()
	fold := func() store.FoldStats {
		t.Helper()
		st, err := store.FoldReportsTx(ctx, pool, rollupConfig)
		require.NoError(t, err)
		require.False(t, st.Skipped)
		return st
	}
	count := func(sql string) (n int64) {
		t.Helper()
		require.NoError(t, pool.QueryRow(ctx, sql).Scan(&n), sql)
		return n
	}
	inTx := func(fn func(tx pgx.Tx)) {
		t.Helper()
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { fn(tx); return nil }))
	}
	check("raw rows, never folded")

	st := fold()
	require.True(t, st.Full)
	require.Positive(t, st.Periods)
	require.Zero(t, count("SELECT count(*) FROM report_dirty"))
	check("rollups")
	// The rollups are read: with their figures changed (in a transaction
	// rolled back) the report's change.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	for _, sql := range []string{
		"UPDATE report_flow_periods SET transitions = transitions + 1, customers = customers + 1",
		"UPDATE report_conversion_periods SET n = n + 1",
		"UPDATE report_repeat_periods SET buyers = buyers + 1",
		"UPDATE report_revenue_days SET orders = orders + 1",
		"UPDATE report_stage_spans SET seconds = seconds + 1",
		"UPDATE report_score_days SET n = n + 1",
	} {
		_, err = tx.Exec(ctx, sql)
		require.NoError(t, err)
	}
	require.NotEqual(t, probe(store.New(pool)), probe(store.New(tx)))
	require.NoError(t, tx.Rollback(ctx))

	inTx(func(tx pgx.Tx) { write(tx, 60) })
	require.Positive(t, count("SELECT count(*) FROM report_dirty"))
	check("late rows, not folded yet")
	st = fold()
	require.False(t, st.Full)
	require.Positive(t, st.Written)
	check("late rows, folded")

	early, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer early.Rollback(ctx) //nolint:errcheck // committed below
	write(early, 30)
	inTx(func(tx pgx.Tx) { write(tx, 30) })
	st = fold()
	require.Positive(t, st.Written)
	require.NoError(t, early.Commit(ctx))
	require.Positive(t, count("SELECT count(*) FROM report_dirty"), "the rows committed after the fold wait for the next")
	check("rows committed after a fold")
	fold()
	require.Zero(t, count("SELECT count(*) FROM report_dirty"))
	check("rows committed after a fold, folded")
}

// lateInstant is a random instant around the equivalence tests' range
// (base − 40 days to base + 5 months), a third of them at a period boundary
// (a month or a week start) or a microsecond before one.
func lateInstant(rng *rand.Rand, base time.Time) time.Time {
	if rng.IntN(3) > 0 {
		return base.Add(time.Duration(rng.Int64N(int64(190*24*time.Hour))) - 40*24*time.Hour).Truncate(time.Second)
	}
	b := base.AddDate(0, rng.IntN(6)-1, 0)
	if rng.IntN(2) == 0 {
		b = report.Trunc(report.PeriodWeek, base.AddDate(0, 0, rng.IntN(180)-35))
	}
	if rng.IntN(2) == 0 {
		b = b.Add(-time.Microsecond)
	}
	return b
}
