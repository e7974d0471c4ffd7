package worker_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	cbench "github.com/ciclohq/ciclo/internal/bench"
	"github.com/ciclohq/ciclo/jobs"
)

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
	bench := setupSweep(b, cbench.NoFireRules)
	now := bench.clock.Now()
	ctx := context.Background()
	loadStart := time.Now()
	require.NoError(b, cbench.CopyCustomers(ctx, bench.db.Pool, n, now))
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

	tenPercent := cbench.TenPercentRules()
	cases := []struct {
		name  string
		rules string
		// noDispatch pauses the email queue during the sweep, so that the
		// rate is that of evaluating and writing alone, without dispatch
		// jobs being worked on the same cores.
		noDispatch bool
	}{
		{name: "NoFirings", rules: cbench.NoFireRules},
		{name: "NoFiringsFullScan", rules: cbench.NoFireRules + cbench.FullScanRule},
		{name: "TenPercentFiringNoDispatch", rules: tenPercent, noDispatch: true},
		{name: "TenPercentFiring", rules: tenPercent},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			// Dispatch of an earlier case's jobs stops while the tables are reset.
			require.NoError(b, client.QueuePause(ctx, jobs.QueueEmail, nil))
			require.NoError(b, cbench.ResetFirings(ctx, bench.db.Pool))
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
				copyRate, err := cbench.CopyOutRate(ctx, bench.db.Pool, n)
				require.NoError(b, err)
				runtime.GC()
				cbench.ResetPeakRSS()
				firedBefore := bench.db.Count(b, "rule_firings", "")
				cpu0 := sampleCPU()
				start := time.Now()
				sweeps++
				tick := now.Add(time.Duration(sweeps) * time.Minute) // a new sweep, not a duplicate
				_, err = client.Insert(ctx, jobs.SweepArgs{Tick: tick, Rules: names}, nil)
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
				b.ReportMetric(float64(cbench.PeakRSS())/(1<<20), "peak_rss_MiB")
				b.ReportMetric(selfCPU.Seconds(), "ciclo_cpu_s")
				b.ReportMetric(dbCPU.Seconds(), "db_cpu_s")
				b.Logf("%s: %d customers in %s: %.0f customers/s; COPY out %.0f rows/s; ratio %.2f; %d firings; %d dispatched meanwhile; peak RSS %d MiB; CPU: ciclo %.2fs, its Postgres backends %.2fs",
					tc.name, n, elapsed.Round(time.Millisecond), rate, copyRate, rate/copyRate, fired, dispatched, cbench.PeakRSS()>>20,
					selfCPU.Seconds(), dbCPU.Seconds())
			}
		})
	}
}

// waitSweep waits until no sweep or shard job is left to run.
func waitSweep(b *testing.B, bench *sweepBundle) {
	b.Helper()
	for bench.db.Count(b, "river_job", "kind IN ('ciclo.sweep', 'ciclo.sweep_shard') AND state NOT IN ('completed', 'cancelled', 'discarded')") > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	require.Zero(b, bench.db.Count(b, "river_job", "kind = 'ciclo.sweep_shard' AND errors IS NOT NULL AND errors <> '{}'"), "shard errors")
}
