package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/templates"
	"github.com/ciclohq/ciclo/unsubscribe"
	"github.com/ciclohq/ciclo/worker"
)

const sweepRules = `version: 1
rules:
  - name: at-risk
    schedule: "0 9 * * *"
    when: days_since(customer.last_order_at) >= 60
    cooldown: 90d
    actions:
      - stage: at_risk
      - coupon: { percent: 20, expires_in: 30d }
      - email: { template: win_back }
  - name: never
    schedule: "0 9 * * *"
    when: customer.orders_count > 1000000
    cooldown: 1d
    actions:
      - stage: churned
`

// nopChannel accepts every message.
type nopChannel struct{ name string }

func (c nopChannel) Name() string { return c.name }
func (c nopChannel) Send(context.Context, *channels.Message) (channels.Result, error) {
	return channels.Result{ProviderID: "nop"}, nil
}
func (c nopChannel) Close() error { return nil }

type sweepBundle struct {
	db    *testdb.DB
	rules *rules.Holder
	clock *testClock
}

type testClock struct{ ns atomic.Int64 }

func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func parseRules(t testing.TB, src string) *rules.RuleSet {
	t.Helper()
	rs, err := rules.Parse("rules.yaml", []byte(src), rules.ParseOptions{})
	require.NoError(t, err)
	return rs
}

func setupSweep(t testing.TB, src string) *sweepBundle {
	t.Helper()
	b := &sweepBundle{db: testdb.New(t), rules: rules.NewHolder(parseRules(t, src)), clock: &testClock{}}
	b.clock.Set(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
	return b
}

// newClient builds a started River client with ciclo's workers on b's schema.
func (b *sweepBundle) newClient(t testing.TB, shardSize, pageSize int) *river.Client[pgx.Tx] {
	t.Helper()
	tset, err := templates.New("")
	require.NoError(t, err)
	client, err := worker.NewClient(b.db.Pool, &worker.Config{
		Rules:  b.rules,
		Now:    b.clock.Now,
		Schema: b.db.Schema,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Dispatch: &worker.DispatchConfig{
			Email: nopChannel{"email"}, Webhook: nopChannel{"webhook"}, Templates: tset,
			Unsubscribe: unsubscribe.NewSigner("secret", "http://localhost"), From: "shop@example.com",
		},
		SweepShardSize: shardSize,
		SweepPageSize:  pageSize,
		// The test's clock is frozen: keep coupon expiry from running.
		CouponExpiryInterval: time.Hour,
	})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
	})
	return client
}

// loadCustomers COPYs n customers; customer i last ordered i%150 days (and
// an hour) before now, except every 10th, who never ordered. It returns the
// ids of those who last ordered at least 60 days before now.
func (b *sweepBundle) loadCustomers(t testing.TB, n int, now time.Time) map[string]bool {
	t.Helper()
	over := map[string]bool{}
	rows := make([][]any, n)
	for i := range n {
		id := fmt.Sprintf("c-%05d", i)
		var last *time.Time
		if i%10 != 0 {
			days := i % 150
			lt := now.Add(-time.Duration(days)*24*time.Hour - time.Hour)
			last = &lt
			if days >= 60 {
				over[id] = true
			}
		}
		rows[i] = []any{id, id + "@example.com", "retention", now.Add(-400 * 24 * time.Hour), last}
	}
	_, err := b.db.Pool.CopyFrom(context.Background(), pgx.Identifier{"customers"},
		[]string{"id", "email", "stage", "created_at", "last_order_at"}, pgx.CopyFromRows(rows))
	require.NoError(t, err)
	_, err = b.db.Pool.Exec(context.Background(), "ANALYZE customers")
	require.NoError(t, err)
	return over
}

// waitJobs waits until no job is pending or running.
func waitJobs(t testing.TB, db *testdb.DB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if db.Count(t, "river_job", "state IN ('available','running','retryable','scheduled','pending')") == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	rows, err := db.Pool.Query(context.Background(), "SELECT kind, state, errors::text FROM river_job WHERE state <> 'completed' LIMIT 5")
	require.NoError(t, err)
	for rows.Next() {
		var kind, state string
		var errs *string
		require.NoError(t, rows.Scan(&kind, &state, &errs))
		if errs != nil {
			t.Logf("job %s %s: %s", kind, state, *errs)
		}
	}
	t.Fatalf("jobs still pending after 30s")
}

// perCustomer returns how many rows of table each customer has, by where.
func perCustomer(t testing.TB, db *testdb.DB, table, where string) map[string]int {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), "SELECT customer_id, count(*) FROM "+table+" WHERE "+where+" GROUP BY customer_id")
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct {
		id string
		n  int
	}, error,
	) {
		var v struct {
			id string
			n  int
		}
		return v, r.Scan(&v.id, &v.n)
	})
	require.NoError(t, err)
	m := map[string]int{}
	for _, v := range out {
		m[v.id] = v.n
	}
	return m
}

func dispatchJobsPerCustomer(t testing.TB, db *testdb.DB) map[string]int {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(),
		`SELECT customer_id, count(*) FROM (
			SELECT args->>'customer_id' AS customer_id FROM river_job WHERE kind = 'ciclo.dispatch'
			UNION ALL
			SELECT d->>'customer_id' FROM river_job, jsonb_array_elements(args->'deliveries') d WHERE kind = 'ciclo.dispatch_batch'
		) refs GROUP BY 1`)
	require.NoError(t, err)
	m := map[string]int{}
	for rows.Next() {
		var (
			id string
			n  int
		)
		require.NoError(t, rows.Scan(&id, &n))
		m[id] = n
	}
	require.NoError(t, rows.Err())
	return m
}

func TestSweepShardWorker(t *testing.T) {
	t.Parallel()

	t.Run("FiresOncePerCustomerAndCooldown", func(t *testing.T) {
		t.Parallel()
		b := setupSweep(t, sweepRules)
		ctx := context.Background()
		start := b.clock.Now()
		over := b.loadCustomers(t, 1000, start)
		require.NotEmpty(t, over)

		// Two processes, small shards so both work the same sweep.
		c1 := b.newClient(t, 150, 64)
		c2 := b.newClient(t, 150, 64)

		sweep := jobs.SweepArgs{Tick: start, Rules: []string{"at-risk", "never"}}
		var wg sync.WaitGroup
		for _, c := range []*river.Client[pgx.Tx]{c1, c2} {
			wg.Go(func() {
				// The same tick from both: one sweep (unique), and a whole-range
				// shard racing the sweep's own shards.
				_, err := c.Insert(ctx, sweep, nil)
				require.NoError(t, err)
				_, err = c.Insert(ctx, jobs.SweepShardArgs{Tick: start, Rules: sweep.Rules}, nil)
				require.NoError(t, err)
			})
		}
		wg.Wait()
		waitJobs(t, b.db)
		require.Greater(t, b.db.Count(t, "river_job", "kind = 'ciclo.sweep_shard'"), 2, "sweep split into shards")
		require.Equal(t, 1, b.db.Count(t, "river_job", "kind = 'ciclo.sweep'"))

		// A later sweep inside the cooldown changes nothing.
		b.clock.Add(time.Hour)
		_, err := c1.Insert(ctx, jobs.SweepArgs{Tick: b.clock.Now(), Rules: sweep.Rules}, nil)
		require.NoError(t, err)
		waitJobs(t, b.db)

		want := map[string]int{}
		for id := range over {
			want[id] = 1
		}
		require.Equal(t, want, perCustomer(t, b.db, "rule_firings", "rule = 'at-risk'"))
		require.Equal(t, want, perCustomer(t, b.db, "coupons", "rule = 'at-risk' AND kind = 'percent' AND value = 20"))
		require.Equal(t, want, perCustomer(t, b.db, "stage_transitions", "rule = 'at-risk' AND from_stage = 'retention' AND to_stage = 'at_risk'"))
		require.Equal(t, want, perCustomer(t, b.db, "deliveries", "rule = 'at-risk' AND channel = 'email'"))
		require.Equal(t, want, dispatchJobsPerCustomer(t, b.db))
		require.Equal(t, len(over), b.db.Count(t, "customers", "stage = 'at_risk' AND coupon_expires_at IS NOT NULL"))
		require.Equal(t, 0, b.db.Count(t, "rule_firings", "rule = 'never'"))

		// Past the cooldown: everyone who ordered is now over 60 days; those
		// who fired before fire once more, the others for the first time.
		b.clock.Add(91 * 24 * time.Hour)
		for range 2 {
			_, err := c2.Insert(ctx, jobs.SweepArgs{Tick: b.clock.Now(), Rules: sweep.Rules}, nil)
			require.NoError(t, err)
			waitJobs(t, b.db)
			b.clock.Add(time.Hour)
		}
		firings := perCustomer(t, b.db, "rule_firings", "rule = 'at-risk'")
		for i := range 1000 {
			id := fmt.Sprintf("c-%05d", i)
			switch {
			case i%10 == 0:
				require.Zero(t, firings[id], id)
			case over[id]:
				require.Equal(t, 2, firings[id], id)
			default:
				require.Equal(t, 1, firings[id], id)
			}
		}
		coupons := perCustomer(t, b.db, "coupons", "true")
		require.Equal(t, firings, coupons)
		require.Equal(t, firings, dispatchJobsPerCustomer(t, b.db))
		// Already at risk: the second firing moves nobody.
		require.Equal(t, 900, b.db.Count(t, "stage_transitions", "rule = 'at-risk'"))
	})
}

func TestPeriodicSweeps(t *testing.T) {
	t.Parallel()

	t.Run("SyncAddsAndRemoves", func(t *testing.T) {
		t.Parallel()
		b := setupSweep(t, sweepRules)
		client := b.newClient(t, 0, 0)
		p := worker.NewPeriodicSweeps(client, b.rules)

		added, removed, err := p.Sync(b.rules.Load())
		require.NoError(t, err)
		require.Len(t, added, 1, "rules on one schedule share a sweep")
		require.True(t, strings.HasPrefix(added[0], "ciclo.sweep/UTC/"), added[0])
		daily := added[0]
		require.Empty(t, removed)

		added, removed, err = p.Sync(b.rules.Load())
		require.NoError(t, err)
		require.Empty(t, added)
		require.Empty(t, removed)

		next := parseRules(t, strings.ReplaceAll(sweepRules, `schedule: "0 9 * * *"
    when: customer.orders_count`, `schedule: "@every 1s"
    timezone: Europe/Madrid
    when: customer.orders_count`))
		b.rules.Store(next)
		added, removed, err = p.Sync(next)
		require.NoError(t, err)
		require.Len(t, added, 1)
		require.True(t, strings.HasPrefix(added[0], "ciclo.sweep/Europe/Madrid/"), added[0])
		everySecond := added[0]
		require.Empty(t, removed)

		// The leader enqueues the every-second sweep with its rule only.
		deadline := time.Now().Add(20 * time.Second)
		for b.db.Count(t, "river_job", "kind = 'ciclo.sweep' AND args->'rules' = '[\"never\"]'") == 0 {
			require.True(t, time.Now().Before(deadline), "no periodic sweep enqueued")
			time.Sleep(50 * time.Millisecond)
		}

		b.rules.Store(b.rules.Load())
		added, removed, err = p.Sync(parseRules(t, `version: 1
rules:
  - name: welcome
    on: signed_up
    actions: [{stage: acquisition}]
`))
		require.NoError(t, err)
		require.Empty(t, added)
		require.Equal(t, []string{everySecond, daily}, removed)
	})
}

func TestLastTick(t *testing.T) {
	t.Parallel()
	rs := parseRules(t, sweepRules)
	sched := rs.Rule("at-risk").CronSchedule()
	at9 := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		now  time.Time
		want time.Time
	}{
		{"OnTime", at9.Add(20 * time.Millisecond), at9},
		{"EnqueuerEarly", at9.Add(-100 * time.Millisecond), at9},
		{"Late", at9.Add(3 * time.Hour), at9},
		{"BeforeTick", at9.Add(-time.Hour), at9.Add(-24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, worker.LastTick(sched, tt.now).UTC())
		})
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
