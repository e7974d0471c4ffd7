package worker_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	cbench "github.com/ciclohq/ciclo/internal/bench"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/worker"
)

const benchJourneyRules = `version: 1
rules:
  - name: batch
    schedule: "0 9 * * *"
    cooldown: 1d
    actions: [{email: {template: win_back}}]
  - name: journey
    on: checkout_started
    actions:
      - wait: 1h
      - email: { template: win_back }
`

// BenchmarkJourneyResume puts CICLO_BENCH_RUNS runs (default 100,000) in a
// wait ending on the same instant and resumes them as their step jobs do
// (JourneyStepBatchSize runs per job and transaction: lock, step, fire the
// email through Store.Fire, enqueue dispatch), beside today's batch
// dispatch of the same email to the same customers (a sweep's
// Store.Fire in batches of the same size) in the same run, and reports
// both rates and their ratio. Run with
//
//	go test ./worker -run '^$' -bench BenchmarkJourneyResume -benchtime 1x
func BenchmarkJourneyResume(b *testing.B) {
	n := 100_000
	if v := os.Getenv("CICLO_BENCH_RUNS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(b, err)
	}
	bench := setupSweep(b, benchJourneyRules)
	ctx := context.Background()
	now := bench.clock.Now()
	require.NoError(b, cbench.CopyCustomers(ctx, bench.db.Pool, n, now))
	rs := bench.rules.Load()
	client, err := worker.NewClient(bench.db.Pool, &worker.Config{Rules: bench.rules, InsertOnly: true, Schema: bench.db.Schema})
	require.NoError(b, err)
	var ids []string
	rows, err := bench.db.Pool.Query(ctx, "SELECT id FROM customers ORDER BY id")
	require.NoError(b, err)
	for rows.Next() {
		var id string
		require.NoError(b, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(b, rows.Err())
	batch := jobs.JourneyStepBatchSize

	for b.Loop() {
		// Today's batch dispatch: a sweep fires the email for batch customers per transaction.
		start := time.Now()
		for i := 0; i < len(ids); i += batch {
			cs := make([]*store.Customer, 0, batch)
			for _, id := range ids[i:min(i+batch, len(ids))] {
				cs = append(cs, &store.Customer{ID: id})
			}
			require.NoError(b, pgx.BeginFunc(ctx, bench.db.Pool, func(tx pgx.Tx) error {
				return worker.FireManyTx(ctx, tx, client, rs.Version, rs.Rule("batch"), cs, "bench", now)
			}))
		}
		batchRate := float64(len(ids)) / time.Since(start).Seconds()

		// n runs waiting on the same instant, right after their wait.
		_, err = bench.db.Pool.Exec(ctx, `INSERT INTO journey_runs (customer_id, rule, key, rule_set_version, pc, seq, state, next_step_at, started_at)
			SELECT id, 'journey', '', $1, 1, 1, 'waiting', $2, $3 FROM customers`, rs.Version, now.Add(time.Hour), now)
		require.NoError(b, err)
		_, err = bench.db.Pool.Exec(ctx, "VACUUM ANALYZE journey_runs")
		require.NoError(b, err)
		var refs []store.RunRef
		rows, err := bench.db.Pool.Query(ctx, "SELECT customer_id, id FROM journey_runs ORDER BY customer_id")
		require.NoError(b, err)
		for rows.Next() {
			r := store.RunRef{Seq: 1}
			require.NoError(b, rows.Scan(&r.CustomerID, &r.ID))
			refs = append(refs, r)
		}
		require.NoError(b, rows.Err())
		at := now.Add(time.Hour)
		start = time.Now()
		for i := 0; i < len(refs); i += batch {
			require.NoError(b, pgx.BeginFunc(ctx, bench.db.Pool, func(tx pgx.Tx) error {
				return worker.ResumeJourneyRunsTx(ctx, tx, client, bench.rules, refs[i:min(i+batch, len(refs))], at)
			}))
		}
		runRate := float64(len(refs)) / time.Since(start).Seconds()
		var done, deliveries int
		require.NoError(b, bench.db.Pool.QueryRow(ctx, "SELECT count(*) FROM journey_runs WHERE state = 'done'").Scan(&done))
		require.NoError(b, bench.db.Pool.QueryRow(ctx, "SELECT count(*) FROM deliveries WHERE rule = 'journey'").Scan(&deliveries))
		require.Equal(b, n, done)
		require.Equal(b, n, deliveries)
		b.ReportMetric(batchRate, "batch_customers/s")
		b.ReportMetric(runRate, "journey_runs/s")
		b.ReportMetric(runRate/batchRate, "ratio")
		b.Logf("%d runs: journey resume %.0f runs/s, batch dispatch %.0f customers/s, ratio %.2f", n, runRate, batchRate, runRate/batchRate)
	}
}
