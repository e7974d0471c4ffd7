package report_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/dryrun"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/migrations"
	"github.com/ciclohq/ciclo/report"
	"github.com/ciclohq/ciclo/store"
)

// benchSize reads a positive integer from the environment.
func benchSize(b *testing.B, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// BenchmarkReport builds the lifecycle and rules reports over a year of
// synthetic history — CICLO_BENCH_CUSTOMERS customers (default 20,000) and
// CICLO_BENCH_EVENTS events (default 5 per customer), with stage
// transitions, firings, deliveries and coupons — and reports its time as a
// ratio to one count(*) over events in the same run, and the Go memory it
// allocates (which stays flat as customers grow: the queries aggregate in
// Postgres and return a row per period, stage or rule). The DESIGN target:
//
//	CICLO_BENCH_CUSTOMERS=1000000 CICLO_BENCH_EVENTS=5000000 \
//	  go test ./report -run '^$' -bench BenchmarkReport -benchtime 1x -timeout 60m
//
// Generating the history takes minutes at that size: with
// CICLO_BENCH_SCHEMA=name the benchmark keeps it in that schema of the test
// database (migrated to the current version on each run) and reuses it when
// the schema exists, so that before/after runs read the same history.
func BenchmarkReport(b *testing.B) {
	customers := benchSize(b, "CICLO_BENCH_CUSTOMERS", 20000)
	events := benchSize(b, "CICLO_BENCH_EVENTS", 5*customers)
	ctx := context.Background()
	pool := benchHistoryPool(b, customers, events)

	params := report.Params{Now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Rules: []string{"welcome", "win-back"}}
	// The rollups, as the periodic fold keeps them: the first fold of the
	// history (the catch-up) when the schema has none yet, then one fold
	// after recent writes (rows of the history's last two days rewritten,
	// which logs them as written as new rows would).
	var folded int64
	require.NoError(b, pool.QueryRow(ctx, "SELECT count(*) FROM report_rollup_state").Scan(&folded))
	if folded == 0 {
		t0 := time.Now()
		st, err := store.FoldReportsTx(ctx, pool, report.RollupConfig())
		require.NoError(b, err)
		b.Logf("catch-up fold: %s (%d periods, %d written rows)", time.Since(t0).Round(time.Millisecond), st.Periods, st.Written)
		b.ReportMetric(time.Since(t0).Seconds(), "s/catch-up_fold")
	}
	for _, sql := range []string{
		`UPDATE events SET occurred_at = occurred_at WHERE id IN (SELECT id FROM events WHERE occurred_at >= timestamptz '2026-11-29' LIMIT 2000)`,
		`UPDATE stage_transitions SET occurred_at = occurred_at WHERE id IN (SELECT id FROM stage_transitions WHERE occurred_at >= timestamptz '2026-11-29' LIMIT 200)`,
		`UPDATE rule_firings SET fired_at = fired_at WHERE id IN (SELECT id FROM rule_firings WHERE fired_at >= timestamptz '2026-11-29' LIMIT 100)`,
	} {
		_, err := pool.Exec(ctx, sql)
		require.NoError(b, err)
	}
	t0 := time.Now()
	st, err := store.FoldReportsTx(ctx, pool, report.RollupConfig())
	require.NoError(b, err)
	b.Logf("incremental fold: %s (%d periods, %d written rows)", time.Since(t0).Round(time.Millisecond), st.Periods, st.Written)
	b.ReportMetric(time.Since(t0).Seconds(), "s/incremental_fold")
	// The baseline: one count(*) over events, best of three (warm cache).
	var baseline time.Duration
	for range 3 {
		t0 := time.Now()
		n, err := store.New(pool).CountEvents(ctx)
		require.NoError(b, err)
		require.Equal(b, int64(events), n)
		if d := time.Since(t0); baseline == 0 || d < baseline {
			baseline = d
		}
	}

	var ms0, ms1 runtime.MemStats
	b.ResetTimer()
	var elapsed time.Duration
	for range b.N {
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		t0 := time.Now()
		err := dryrun.ReadOnly(ctx, pool, func(st *store.Store) error {
			l, err := report.Build(ctx, st, params)
			if err != nil {
				return err
			}
			if len(l.Funnel) == 0 {
				b.Fatal("empty funnel")
			}
			_, err = report.BuildRules(ctx, st, params)
			return err
		})
		require.NoError(b, err)
		elapsed += time.Since(t0)
		runtime.ReadMemStats(&ms1)
	}
	b.StopTimer()
	per := elapsed / time.Duration(b.N)
	b.ReportMetric(per.Seconds(), "s/report")
	b.ReportMetric(baseline.Seconds(), "s/count(*)")
	b.ReportMetric(per.Seconds()/baseline.Seconds(), "ratio")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/1024, "KiB_alloc/report")
	// Peak RSS of the process (generation included when it ran here).
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	b.ReportMetric(float64(ru.Maxrss)/1024, "MiB_peak_RSS")
}

// benchHistoryPool returns a pool on a migrated schema holding the
// benchmark's history: a fresh one removed after the benchmark, or the
// schema CICLO_BENCH_SCHEMA names, generated there if it does not exist yet.
func benchHistoryPool(b *testing.B, customers, events int) *pgxpool.Pool {
	b.Helper()
	ctx := context.Background()
	schema := os.Getenv("CICLO_BENCH_SCHEMA")
	var pool *pgxpool.Pool
	fresh := true
	if schema == "" {
		pool = testdb.New(b).Pool
	} else {
		testdb.EnsureDatabase(b)
		admin, err := pgx.Connect(ctx, testdb.URL())
		require.NoError(b, err, "connect to test database %s (set TEST_DATABASE_URL)", testdb.URL())
		_, err = admin.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
		require.NoError(b, err, "CICLO_BENCH_SCHEMA=%q", schema)
		require.NoError(b, admin.QueryRow(ctx,
			`SELECT NOT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'events')`, schema).Scan(&fresh))
		require.NoError(b, admin.Close(ctx))
		pool, err = pgxpool.New(ctx, testdb.WithSearchPath(testdb.URL(), schema))
		require.NoError(b, err)
		b.Cleanup(pool.Close)
		require.NoError(b, migrations.Up(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil))))
		if !fresh {
			var c, e int
			require.NoError(b, pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM events)").Scan(&c, &e))
			if c != customers || e != events {
				b.Fatalf("CICLO_BENCH_SCHEMA=%s holds %d customers and %d events, not %d and %d: drop the schema or name another",
					schema, c, e, customers, events)
			}
		}
	}
	start := time.Now()
	if fresh {
		for _, stmt := range benchHistory {
			_, err := pool.Exec(ctx, stmt, customers, events)
			require.NoError(b, err, stmt)
		}
		b.Logf("generated %d customers, %d events in %s", customers, events, time.Since(start).Round(time.Second))
	}
	// A steady state: hint bits and the visibility map set, as autovacuum
	// leaves them (and statistics for any index a new migration added).
	for _, table := range []string{"customers", "events", "stage_transitions", "rule_firings", "deliveries", "coupons", "report_dirty"} {
		_, err := pool.Exec(ctx, "VACUUM ANALYZE "+table)
		require.NoError(b, err)
	}
	return pool
}

// benchHistory generates the benchmark's history ($1 customers, $2 events)
// over the year before 2026-12-01: everyone signs up and is acquired, 60%
// convert, 20% of those churn; events are 60% orders, 10% each sign-ups,
// NPS and CSAT answers and page views.
var benchHistory = []string{
	`INSERT INTO customers (id, email, created_at, first_order_at, stage)
	 SELECT 'c' || lpad(i::text, 8, '0'), 'c' || i || '@example.com',
	        timestamptz '2025-12-01' + ((i::bigint * 7919) % 365) * interval '1 day',
	        CASE WHEN i % 5 < 3 THEN timestamptz '2025-12-01' + ((i::bigint * 7919) % 365 + 2) * interval '1 day' END,
	        'acquisition'
	 FROM generate_series(1, $1::int) AS i WHERE $2::int > 0`,
	`INSERT INTO events (customer_id, type, properties, occurred_at)
	 SELECT 'c' || lpad((g % $1::int + 1)::text, 8, '0'),
	        CASE t WHEN 0 THEN 'signed_up' WHEN 1 THEN 'nps_answered' WHEN 2 THEN 'csat_answered'
	               WHEN 3 THEN 'page_view' ELSE 'order_placed' END,
	        CASE t WHEN 1 THEN jsonb_build_object('score', g % 11) WHEN 2 THEN jsonb_build_object('score', 1 + g % 5)
	               WHEN 0 THEN '{}' WHEN 3 THEN '{}' ELSE jsonb_build_object('total', 10 + g % 100) END,
	        timestamptz '2025-12-01' + ((g * 7907) % 365) * interval '1 day' + (g % 86400) * interval '1 second'
	 FROM (SELECT g, (g % 10 + g / $1::int) % 10 AS t FROM generate_series(1::bigint, $2::int) AS g) x`,
	`INSERT INTO stage_transitions (customer_id, from_stage, to_stage, occurred_at)
	 SELECT id, NULL, 'reach', created_at FROM customers WHERE $1::int > 0 AND $2::int > 0
	 UNION ALL SELECT id, 'reach', 'acquisition', created_at + interval '1 hour' FROM customers
	 UNION ALL SELECT id, 'acquisition', 'conversion', first_order_at FROM customers WHERE first_order_at IS NOT NULL
	 UNION ALL SELECT id, 'conversion', 'churned', first_order_at + interval '130 days' FROM customers
	           WHERE first_order_at IS NOT NULL AND right(id, 1) = '7'`,
	`INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, fired_at)
	 SELECT id, 'welcome', 'event:1', 'v1', created_at + interval '1 hour' FROM customers WHERE $1::int > 0 AND $2::int > 0
	 UNION ALL SELECT id, 'win-back', 'window:1', 'v1', first_order_at + interval '131 days' FROM customers
	           WHERE first_order_at IS NOT NULL AND right(id, 1) = '7'`,
	`INSERT INTO deliveries (customer_id, firing_id, rule, channel, status, created_at, sent_at)
	 SELECT customer_id, id, rule, 'email', CASE WHEN id % 10 = 0 THEN 'skipped_cap' ELSE 'sent' END, fired_at, fired_at
	 FROM rule_firings WHERE $1::int > 0 AND $2::int > 0`,
	`INSERT INTO coupons (code, customer_id, rule, firing_id, kind, value, created_at, expires_at, redeemed_at)
	 SELECT 'C-' || id, customer_id, rule, id, 'percent', 20, fired_at, fired_at + interval '30 days',
	        CASE WHEN id % 3 = 0 THEN fired_at + interval '5 days' END
	 FROM rule_firings WHERE rule = 'win-back' AND $1::int > 0 AND $2::int > 0`,
}
