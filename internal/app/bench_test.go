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
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// BenchmarkIngest posts batches of 100 order events through the HTTP API
// and compares the rate with pgbench's single-row INSERT rate on the same
// database in the same run (DESIGN target: ratio ≥ 0.25).
//
//	go test ./internal/app -run x -bench Ingest -benchtime 20000x
func BenchmarkIngest(b *testing.B) {
	bundle := setup(b)
	baseline := pgbenchInsertTPS(b, bundle.db.URL)

	const batch = 100
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < b.N {
		var sb strings.Builder
		sb.WriteByte('[')
		for i := 0; i < batch; i++ {
			if i > 0 {
				sb.WriteByte(',')
			}
			n := sent + i
			fmt.Fprintf(&sb, `{"customer_id":"c-%d","type":"order_placed","idempotency_key":"o-%d","email":"c%d@example.com","properties":{"total":12.5}}`, n%5000, n, n%5000)
		}
		sb.WriteByte(']')
		status, body := post(b, bundle.url, token, sb.String())
		if status != http.StatusAccepted {
			b.Fatalf("status %d: %s", status, body)
		}
		sent += batch
	}
	elapsed := time.Since(start)
	b.StopTimer()
	rate := float64(sent) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(baseline, "pgbench_inserts/s")
	b.ReportMetric(rate/baseline, "ratio")
}

// pgbenchInsertTPS runs pgbench for 3 s with one client inserting one row
// per transaction into a scratch table in the same database.
func pgbenchInsertTPS(b *testing.B, url string) float64 {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(b, err)
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_single (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer_id text, payload jsonb, at timestamptz)`)
	require.NoError(b, err)
	var schema string
	require.NoError(b, conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema))
	require.NoError(b, conn.Close(ctx))

	script := filepath.Join(b.TempDir(), "insert.sql")
	require.NoError(b, os.WriteFile(script, []byte(
		"INSERT INTO "+schema+`.bench_single (customer_id, payload, at) VALUES ('c-1', '{"total": 12.5}', now());`+"\n"), 0o644))
	cfg, err := pgx.ParseConfig(url)
	require.NoError(b, err)
	cmd := exec.Command("pgbench", "-n", "-c", "1", "-T", "3", "-f", script,
		"-h", cfg.Host, "-p", strconv.Itoa(int(cfg.Port)), "-U", cfg.User, cfg.Database)
	out, err := cmd.CombinedOutput()
	require.NoError(b, err, string(out))
	m := regexp.MustCompile(`tps = ([0-9.]+)`).FindSubmatch(out)
	require.NotNil(b, m, string(out))
	tps, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(b, err)
	return tps
}
