package csvimport_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/csvimport"
	"github.com/ciclohq/ciclo/internal/testdb"
)

// BenchmarkImport imports a generated customers file (CICLO_BENCH_IMPORT_ROWS,
// default 100,000) into an empty schema and reports rows/s beside a raw
// COPY of the same file into a bare table in the same run (ratio target
// ≥ 0.3).
func BenchmarkImport(b *testing.B) {
	rows := 100_000
	if v, err := strconv.Atoi(os.Getenv("CICLO_BENCH_IMPORT_ROWS")); err == nil && v > 0 {
		rows = v
	}
	path := filepath.Join(b.TempDir(), "customers.csv")
	f, err := os.Create(path)
	require.NoError(b, err)
	fmt.Fprintln(f, "id,email,name,timezone,created_at,stage,accepts_marketing,plan")
	for i := range rows {
		fmt.Fprintf(f, "c%d,c%d@example.com,Customer %d,Europe/Madrid,2024-01-%02d,,%t,p%d\n", i, i, i, i%28+1, i%2 == 0, i%3)
	}
	require.NoError(b, f.Close())
	ctx := context.Background()

	var copySecs, importSecs float64
	for b.Loop() {
		b.StopTimer()
		db := testdb.New(b)
		_, err := db.Pool.Exec(ctx, `CREATE TABLE raw_customers (id text, email text, name text, timezone text,
			created_at timestamptz, stage text, accepts_marketing boolean, plan text)`)
		require.NoError(b, err)
		b.StartTimer()

		start := time.Now()
		conn, err := db.Pool.Acquire(ctx)
		require.NoError(b, err)
		in, err := os.Open(path)
		require.NoError(b, err)
		_, err = conn.Conn().PgConn().CopyFrom(ctx, in, "COPY raw_customers FROM STDIN (FORMAT csv, HEADER true)")
		require.NoError(b, err)
		_ = in.Close()
		conn.Release()
		copySecs += time.Since(start).Seconds()

		in, err = os.Open(path)
		require.NoError(b, err)
		start = time.Now()
		sum, err := csvimport.Run(ctx, db.Pool, in, csvimport.RunOptions{
			Kind: csvimport.KindCustomers, InitialStage: "reach", Version: "bench", Now: time.Now(),
		})
		require.NoError(b, err)
		importSecs += time.Since(start).Seconds()
		_ = in.Close()
		require.EqualValues(b, rows, sum.Created)
		var n int
		require.NoError(b, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n)
		}))
		require.Equal(b, rows, n)
	}
	copyRate := float64(rows*b.N) / copySecs
	importRate := float64(rows*b.N) / importSecs
	b.ReportMetric(copyRate, "copy_rows/s")
	b.ReportMetric(importRate, "import_rows/s")
	b.ReportMetric(importRate/copyRate, "ratio")
}
