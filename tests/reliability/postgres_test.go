package reliability

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/localpg"
	"github.com/ciclohq/ciclo/internal/smtptest"
)

// loadResult is what a stream of single events got from the API.
type loadResult struct {
	mu      sync.Mutex
	acked   []string
	others  map[int]int // status (0: transport error) → count, for non-2xx
	slowest time.Duration
	done    chan struct{} // closed when the load has stopped
}

// postLoad posts one first order after another, each for a new customer,
// until ctx ends, with two clients at a time.
func postLoad(ctx context.Context, addr, prefix string) *loadResult {
	res := &loadResult{others: map[int]int{}, done: make(chan struct{})}
	var seq atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(seq.Add(1))
				body, ids := firstOrders(prefix, i, i+1)
				start := time.Now()
				status, _, err := postJSON(context.Background(), addr, "/v1/events", body[1:len(body)-1])
				took := time.Since(start)
				res.mu.Lock()
				res.slowest = max(res.slowest, took)
				switch {
				case err == nil && status/100 == 2:
					res.acked = append(res.acked, ids...)
				case err != nil:
					res.others[0]++
				default:
					res.others[status]++
				}
				res.mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	go func() { wg.Wait(); close(res.done) }()
	return res
}

// TestPostgresOutage: under a steady stream of events, every backend of
// a cluster of the test's own is terminated, then the server is stopped
// for a few seconds and started again. The process stays up; /readyz says
// 503 while the database is away and 200 after; the API answers 503 at
// once rather than hanging; every acknowledged event is stored and fires.
func TestPostgresOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, err := localpg.Find(ctx, &localpg.Options{
		Database:       "ciclo_reliability",
		Candidates:     []string{fmt.Sprintf("postgres://postgres@127.0.0.1:%d/?sslmode=disable&connect_timeout=1", freePort(t))},
		AllowThrowaway: true,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Stop() })
	t.Log(pg.How)

	smtp := smtptest.Start(t)
	rules := writeFile(t, "rules.yaml", firstOrderRules)
	env := append([]string{"DATABASE_URL=" + withPool(pg.URL, 20), "CICLO_SMTP_URL=" + smtp.URL, "CICLO_RULES=" + rules}, rescueEnv...)
	p := startProc(t, "all", env, "--evaluate-workers", "4", "--email-workers", "4", "--sweep-workers", "1")

	readyz := func() int {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := getStatus(rctx, p.addr, "/readyz")
		if err != nil {
			return 0
		}
		return st
	}
	require.Equal(t, 200, readyz())

	loadCtx, stopLoad := context.WithCancel(ctx)
	load := postLoad(loadCtx, p.addr, "pg")
	time.Sleep(2 * time.Second)

	// Every backend but ours is terminated.
	admin, err := pgxpool.New(ctx, pg.URL)
	require.NoError(t, err)
	var killed int
	require.NoError(t, admin.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND backend_type = 'client backend') k`).Scan(&killed))
	admin.Close()
	t.Logf("terminated %d backends", killed)
	time.Sleep(2 * time.Second)

	// The server goes away for a while.
	require.NoError(t, pg.StopServer(ctx))
	down := time.Now()
	eventually(t, 20*time.Second, "/readyz to say 503", func() (bool, string) {
		st := readyz()
		return st == 503, fmt.Sprint(st)
	})
	time.Sleep(4 * time.Second)
	require.True(t, p.running(), "the process stays up without its database")
	require.NoError(t, pg.StartServer(ctx))
	t.Logf("database away for %s", time.Since(down).Round(time.Millisecond))
	eventually(t, 30*time.Second, "/readyz to say 200 again", func() (bool, string) {
		st := readyz()
		return st == 200, fmt.Sprint(st)
	})
	time.Sleep(2 * time.Second)
	stopLoad()
	<-load.done

	load.mu.Lock()
	acked, others, slowest := load.acked, load.others, load.slowest
	load.mu.Unlock()
	t.Logf("%d events acknowledged, refused by status: %v, slowest answer %s", len(acked), others, slowest.Round(time.Millisecond))
	require.True(t, p.running())
	require.NotEmpty(t, acked)
	require.Positive(t, others[503], "the API said 503 while the database was away")
	for status := range others {
		require.Equal(t, 503, status, "only clean 503s, no hang (client timeout) nor other errors: %v", others)
	}
	require.Less(t, slowest, 12*time.Second, "no request hung")

	// Every acknowledged event is stored and fires once, and its email goes out.
	pool, err := pgxpool.New(ctx, pg.URL)
	require.NoError(t, err)
	defer pool.Close()
	count := func(q string, args ...any) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, q, args...).Scan(&n), q)
		return n
	}
	require.Equal(t, len(acked), count("SELECT count(*) FROM events WHERE customer_id = ANY($1)", acked), "every acknowledged event is stored")
	eventually(t, 90*time.Second, "every acknowledged event to fire and email", func() (bool, string) {
		f := count("SELECT count(DISTINCT customer_id) FROM rule_firings WHERE customer_id = ANY($1)", acked)
		s := count("SELECT count(*) FROM deliveries WHERE customer_id = ANY($1) AND status = 'sent'", acked)
		return f == len(acked) && s == len(acked), fmt.Sprintf("%d of %d fired, %d sent", f, len(acked), s)
	})
	require.Equal(t, 0, count("SELECT count(*) FROM (SELECT customer_id FROM rule_firings GROUP BY customer_id HAVING count(*) > 1) d"))
	ids := map[string]int{}
	for _, m := range smtp.Messages() {
		ids[m.Header.Get("Message-Id")]++
	}
	t.Logf("emails: %d, distinct Message-IDs: %d, duplicates: %d", len(smtp.Messages()), len(ids), len(smtp.Messages())-len(ids))
}
