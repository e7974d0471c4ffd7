package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
)

// BenchmarkIngestSingle posts one order event per request from 8 and 32
// concurrent clients and compares the rate with pgbench's single-row INSERT
// with as many clients on the same database, in the same run (DESIGN
// target: ratio ≥ 0.5).
//
//	go test ./internal/app -run '^$' -bench IngestSingle -benchtime 20000x
func BenchmarkIngestSingle(b *testing.B) {
	for _, clients := range []int{8, 32} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			bundle := setupRole(b, app.RoleAPI) // ingestion alone: no workers competing for the cores
			baseline := pgbenchTPS(b, bundle.db.URL, clients, singleInsertScript)
			rate := postConcurrently(b, bundle.url, clients, b.N, func(n int) string {
				return fmt.Sprintf(`{"customer_id":"c-%d","type":"order_placed","idempotency_key":"o-%d","email":"c%d@example.com","properties":{"total":12.5}}`,
					n%50000, n, n%50000)
			})
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(baseline, "pgbench_inserts/s")
			b.ReportMetric(rate/baseline, "ratio")
		})
	}
}

// BenchmarkIngestBatch1000 posts batches of 1,000 order events and
// compares the rate with pgbench inserting the same 1,000 rows as one
// multi-row INSERT per transaction, in the same run (DESIGN target: ratio ≥ 0.1).
//
//	go test ./internal/app -run '^$' -bench IngestBatch1000 -benchtime 20000x
func BenchmarkIngestBatch1000(b *testing.B) {
	const batch = 1000
	bundle := setupRole(b, app.RoleAPI)
	var sb strings.Builder
	sb.WriteString("INSERT INTO %s.bench_single (customer_id, payload, at) VALUES ")
	for i := range batch {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `('c-%d', '{"total": 12.5}', now())`, i)
	}
	sb.WriteString(";\n")
	baseline := pgbenchTPS(b, bundle.db.URL, 1, sb.String()) * batch
	requests := (b.N + batch - 1) / batch
	rate := postConcurrently(b, bundle.url, 1, requests, func(r int) string {
		var sb strings.Builder
		sb.WriteByte('[')
		for i := range batch {
			if i > 0 {
				sb.WriteByte(',')
			}
			n := r*batch + i
			fmt.Fprintf(&sb, `{"customer_id":"c-%d","type":"order_placed","idempotency_key":"o-%d","email":"c%d@example.com","properties":{"total":12.5}}`,
				n%50000, n, n%50000)
		}
		sb.WriteByte(']')
		return sb.String()
	}) * batch
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(baseline, "pgbench_rows/s")
	b.ReportMetric(rate/baseline, "ratio")
}

// postConcurrently sends requests bodies (body(i) for i in [0, requests))
// from clients goroutines, each with a kept-alive connection, and returns
// the requests answered per second. Any answer but 202 fails b.
func postConcurrently(b *testing.B, url string, clients, requests int, body func(int) string) float64 {
	b.Helper()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer hc.CloseIdleConnections()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		failOnce sync.Once
		failure  string
	)
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				req, err := http.NewRequest(http.MethodPost, url+"/v1/events", strings.NewReader(body(i)))
				if err == nil {
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+token)
					var resp *http.Response
					if resp, err = hc.Do(req); err == nil {
						if resp.StatusCode != http.StatusAccepted {
							err = fmt.Errorf("status %d", resp.StatusCode)
						}
						resp.Body.Close()
					}
				}
				if err != nil {
					failOnce.Do(func() { failure = err.Error() })
					next.Store(int64(requests))
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failure != "" {
		b.Fatal(failure)
	}
	return float64(requests) / elapsed.Seconds()
}

// singleInsertScript is pgbench's single-row INSERT; %s is the schema.
const singleInsertScript = `INSERT INTO %s.bench_single (customer_id, payload, at) VALUES ('c-1', '{"total": 12.5}', now());` + "\n"

// pgbenchTPS runs pgbench for 8 s with clients clients, each running
// script (%s in it is the schema) as one transaction, against a scratch
// table in the same database, and returns the transactions per second.
func pgbenchTPS(b *testing.B, url string, clients int, script string) float64 {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(b, err)
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_single (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer_id text, payload jsonb, at timestamptz)`)
	require.NoError(b, err)
	var schema string
	require.NoError(b, conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema))
	require.NoError(b, conn.Close(ctx))

	file := filepath.Join(b.TempDir(), "script.sql")
	require.NoError(b, os.WriteFile(file, []byte(strings.ReplaceAll(script, "%s", schema)), 0o644))
	cfg, err := pgx.ParseConfig(url)
	require.NoError(b, err)
	cmd := exec.Command("pgbench", "-n", "-c", strconv.Itoa(clients), "-j", "2", "-T", "8", "-f", file,
		"-h", cfg.Host, "-p", strconv.Itoa(int(cfg.Port)), "-U", cfg.User, cfg.Database)
	out, err := cmd.CombinedOutput()
	require.NoError(b, err, string(out))
	m := regexp.MustCompile(`tps = ([0-9.]+)`).FindSubmatch(out)
	require.NotNil(b, m, string(out))
	tps, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(b, err)
	return tps
}
