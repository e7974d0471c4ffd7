package worker_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/jobs"
)

// benchNoFireRules are ten scheduled rules of the usual shapes whose
// conditions no synthetic customer meets (ages are below 1,000 days).
const benchNoFireRules = `version: 1
rules:
  - {name: r1, schedule: "0 9 * * *", cooldown: 90d, when: 'days_since(customer.last_order_at) >= 1000 && customer.stage in ["conversion", "retention", "loyalty"]', actions: [{stage: at_risk}]}
  - {name: r2, schedule: "0 9 * * *", cooldown: 90d, when: 'days_since(customer.last_seen_at) >= 1001', actions: [{stage: at_risk}]}
  - {name: r3, schedule: "0 9 * * *", cooldown: 90d, when: 'customer.orders_count > 100000', actions: [{stage: loyalty}]}
  - {name: r4, schedule: "0 9 * * *", cooldown: 7d, when: 'days_until(customer.coupon_expires_at) <= 3', actions: [{email: {template: bonus_expiring}}]}
  - {name: r5, schedule: "0 9 * * *", cooldown: 365d, when: 'days_since(customer.created_at) >= 5000', actions: [{email: {template: loyalty_reward}}]}
  - {name: r6, schedule: "0 9 * * *", cooldown: 90d, when: 'customer.stage == "churned" && !customer.unsubscribed', actions: [{coupon: {percent: 20, expires_in: 30d}}]}
  - {name: r7, schedule: "0 9 * * *", cooldown: 90d, when: 'hours_since(customer.last_order_at) >= 24100', actions: [{stage: churned}]}
  - {name: r8, schedule: "0 9 * * *", cooldown: 90d, when: 'days_since(customer.first_order_at) >= 3000 && customer.orders_count >= 2', actions: [{stage: loyalty}]}
  - {name: r9, schedule: "0 9 * * *", cooldown: 30d, when: 'customer.stage == "at_risk" && days_since(customer.stage_entered_at) >= 2000', actions: [{stage: churned}]}
  - {name: r10, schedule: "0 9 * * *", cooldown: 30d, when: 'has(customer.last_order_at) && days_since(customer.last_order_at) < 0', actions: [{stage: retention}]}
`

// benchFullScanRule cannot be pushed into SQL: every row is evaluated.
const benchFullScanRule = `  - {name: r11, schedule: "0 9 * * *", cooldown: 30d, when: 'customer.total_spent > 1e12', actions: [{stage: loyalty}]}
`

// benchTenPercentRule fires for customers whose last order is 900–999 days old: 10%.
const benchTenPercentRule = `  - {name: r10, schedule: "0 9 * * *", cooldown: 30d, when: 'days_since(customer.last_order_at) >= 900 && customer.stage == "retention"', actions: [{stage: at_risk}, {coupon: {percent: 20, expires_in: 30d}}, {email: {template: win_back}}]}
`

// BenchmarkSweep sweeps CICLO_BENCH_CUSTOMERS synthetic customers (default
// 20,000) with ten rules and reports customers/s beside the rate at which
// Postgres streams the same table out (COPY ... TO STDOUT) in the same run,
// their ratio, and the process' peak RSS during the sweep. The firing case
// runs twice: first with the email queue paused (TenPercentFiringNoDispatch:
// evaluating and writing alone), then with dispatch jobs worked meanwhile on
// the same cores; each starts from the same reset, vacuumed tables. Run with
//
//	CICLO_BENCH_CUSTOMERS=1000000 go test ./worker -run '^$' -bench BenchmarkSweep -benchtime 1x
func BenchmarkSweep(b *testing.B) {
	n := 20_000
	if v := os.Getenv("CICLO_BENCH_CUSTOMERS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(b, err)
	}
	bench := setupSweep(b, benchNoFireRules)
	now := bench.clock.Now()
	ctx := context.Background()
	loadStart := time.Now()
	copyCustomers(b, bench, n, now)
	b.Logf("loaded %d customers with COPY in %s", n, time.Since(loadStart).Round(time.Millisecond))
	client := bench.newClient(b, 0, 0)
	// Runs before the client stops (cleanups run last in, first out): stop
	// dispatching the last case's 100,000 jobs, so that Stop only waits for
	// those in flight and meets its deadline on a busy machine.
	b.Cleanup(func() {
		_ = client.QueuePause(ctx, jobs.QueueEmail, nil)
		_, _ = bench.db.Pool.Exec(ctx, "DELETE FROM river_job WHERE kind IN ('ciclo.dispatch', 'ciclo.dispatch_batch') AND state = 'available'")
	})
	sweeps := 0

	tenPercent := strings.Replace(benchNoFireRules, benchNoFireRules[strings.Index(benchNoFireRules, "  - {name: r10"):], benchTenPercentRule, 1)
	cases := []struct {
		name  string
		rules string
		// noDispatch pauses the email queue during the sweep, so that the
		// rate is that of evaluating and writing alone, without dispatch
		// jobs being worked on the same cores.
		noDispatch bool
	}{
		{name: "NoFirings", rules: benchNoFireRules},
		{name: "NoFiringsFullScan", rules: benchNoFireRules + benchFullScanRule},
		{name: "TenPercentFiringNoDispatch", rules: tenPercent, noDispatch: true},
		{name: "TenPercentFiring", rules: tenPercent},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			// Dispatch of an earlier case's jobs stops while the tables are reset.
			require.NoError(b, client.QueuePause(ctx, jobs.QueueEmail, nil))
			resetFirings(b, bench)
			if !tc.noDispatch {
				require.NoError(b, client.QueueResume(ctx, jobs.QueueEmail, nil))
			}
			rs := parseRules(b, tc.rules)
			bench.rules.Store(rs)
			names := make([]string, 0, len(rs.Rules))
			for _, r := range rs.Scheduled() {
				names = append(names, r.Name)
			}
			for b.Loop() {
				copyRate := copyOutRate(b, bench, n)
				runtime.GC()
				resetPeakRSS()
				firedBefore := bench.db.Count(b, "rule_firings", "")
				cpu0 := sampleCPU()
				start := time.Now()
				sweeps++
				tick := now.Add(time.Duration(sweeps) * time.Minute) // a new sweep, not a duplicate
				_, err := client.Insert(ctx, jobs.SweepArgs{Tick: tick, Rules: names}, nil)
				require.NoError(b, err)
				waitSweep(b, bench)
				elapsed := time.Since(start)
				selfCPU, dbCPU := sampleCPU().since(cpu0)
				rate := float64(n) / elapsed.Seconds()
				fired := bench.db.Count(b, "rule_firings", "") - firedBefore
				dispatched := bench.db.Count(b, "deliveries", "status = 'sent'")
				b.ReportMetric(rate, "customers/s")
				b.ReportMetric(copyRate, "copy_rows/s")
				b.ReportMetric(rate/copyRate, "ratio")
				b.ReportMetric(float64(fired), "firings")
				b.ReportMetric(float64(dispatched), "dispatched")
				b.ReportMetric(float64(peakRSS())/(1<<20), "peak_rss_MiB")
				b.ReportMetric(selfCPU.Seconds(), "ciclo_cpu_s")
				b.ReportMetric(dbCPU.Seconds(), "db_cpu_s")
				b.Logf("%s: %d customers in %s: %.0f customers/s; COPY out %.0f rows/s; ratio %.2f; %d firings; %d dispatched meanwhile; peak RSS %d MiB; CPU: ciclo %.2fs, its Postgres backends %.2fs",
					tc.name, n, elapsed.Round(time.Millisecond), rate, copyRate, rate/copyRate, fired, dispatched, peakRSS()>>20,
					selfCPU.Seconds(), dbCPU.Seconds())
			}
		})
	}
}

// copyCustomers loads n synthetic customers with COPY, generated on the fly.
// Customer i last ordered i%1000 days before now.
func copyCustomers(b *testing.B, bench *sweepBundle, n int, now time.Time) {
	b.Helper()
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		id := fmt.Sprintf("c-%08d", i)
		age := time.Duration(i%1000) * 24 * time.Hour
		last := now.Add(-age - time.Hour)
		first := last.Add(-30 * 24 * time.Hour)
		row := []any{id, id + "@example.com", "Customer " + id, "Europe/Madrid", "retention", first,
			first, last, first, last, 2 + i%7, int64(1000 + i%50000), `{"plan":"basic"}`}
		i++
		return row, nil
	})
	_, err := bench.db.Pool.CopyFrom(context.Background(), pgx.Identifier{"customers"},
		[]string{"id", "email", "name", "timezone", "stage", "stage_entered_at", "created_at", "last_seen_at",
			"first_order_at", "last_order_at", "orders_count", "total_spent_cents", "attributes"}, src)
	require.NoError(b, err)
	_, err = bench.db.Pool.Exec(context.Background(), "VACUUM ANALYZE customers")
	require.NoError(b, err)
}

// resetFirings undoes what earlier sweeps did, so that every case fires for
// the same customers on a vacuumed table: it deletes firings, transitions,
// coupons, deliveries and dispatch jobs (the email queue must be paused),
// puts every customer back in retention with no coupon, and vacuums.
func resetFirings(b *testing.B, bench *sweepBundle) {
	b.Helper()
	ctx := context.Background()
	for _, sql := range []string{
		"TRUNCATE rule_firings, stage_transitions, coupons, deliveries",
		"DELETE FROM river_job WHERE kind IN ('ciclo.dispatch', 'ciclo.dispatch_batch')",
		"UPDATE customers SET stage = 'retention', coupon_expires_at = NULL WHERE stage <> 'retention' OR coupon_expires_at IS NOT NULL",
		"VACUUM ANALYZE customers",
		"VACUUM ANALYZE river_job",
		"CHECKPOINT",
	} {
		_, err := bench.db.Pool.Exec(ctx, sql)
		require.NoError(b, err, sql)
	}
}

// copyOutRate measures how fast Postgres streams the whole customers table.
func copyOutRate(b *testing.B, bench *sweepBundle, n int) float64 {
	b.Helper()
	conn, err := bench.db.Pool.Acquire(context.Background())
	require.NoError(b, err)
	defer conn.Release()
	start := time.Now()
	tag, err := conn.Conn().PgConn().CopyTo(context.Background(), io.Discard, "COPY (SELECT * FROM customers) TO STDOUT")
	require.NoError(b, err)
	require.EqualValues(b, n, tag.RowsAffected())
	return float64(n) / time.Since(start).Seconds()
}

// waitSweep waits until no sweep or shard job is left to run.
func waitSweep(b *testing.B, bench *sweepBundle) {
	b.Helper()
	for bench.db.Count(b, "river_job", "kind IN ('ciclo.sweep', 'ciclo.sweep_shard') AND state NOT IN ('completed', 'cancelled', 'discarded')") > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	require.Zero(b, bench.db.Count(b, "river_job", "kind = 'ciclo.sweep_shard' AND errors IS NOT NULL AND errors <> '{}'"), "shard errors")
}

// resetPeakRSS resets the kernel's peak RSS of this process (VmHWM).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns VmHWM, the process' peak resident set size, in bytes.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
