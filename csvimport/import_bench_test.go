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

// BenchmarkImport imports a generated customers or orders file
// (CICLO_BENCH_IMPORT_ROWS rows, default 100,000) into an empty schema and
// reports rows/s beside a raw COPY of the same file into a bare table in
// the same run (ratio target ≥ 0.3). The orders file names a customer per
// three orders, none of them stored yet, so the import also creates them.
func BenchmarkImport(b *testing.B) {
	rows := 100_000
	if v, err := strconv.Atoi(os.Getenv("CICLO_BENCH_IMPORT_ROWS")); err == nil && v > 0 {
		rows = v
	}
	b.Run("customers", func(b *testing.B) {
		benchImport(b, csvimport.KindCustomers, rows, func(f *os.File) {
			fmt.Fprintln(f, "id,email,name,timezone,created_at,stage,accepts_marketing,plan")
			for i := range rows {
				fmt.Fprintf(f, "c%d,c%d@example.com,Customer %d,Europe/Madrid,2024-01-%02d,,%t,p%d\n", i, i, i, i%28+1, i%2 == 0, i%3)
			}
		}, `id text, email text, name text, timezone text, created_at timestamptz, stage text, accepts_marketing boolean, plan text`)
	})
	b.Run("orders", func(b *testing.B) {
		benchImport(b, csvimport.KindOrders, rows, func(f *os.File) {
			fmt.Fprintln(f, "customer_id,order_id,total,currency,ordered_at,status")
			for i := range rows {
				status := ""
				if i%20 == 0 {
					status = "refunded"
				}
				fmt.Fprintf(f, "c%d,o%d,%d.%02d,EUR,2024-02-%02dT10:00:00Z,%s\n", i/3, i, i%90+1, i%100, i%28+1, status)
			}
		}, `customer_id text, order_id text, total numeric, currency text, ordered_at timestamptz, status text`)
	})
}

func benchImport(b *testing.B, kind string, rows int, write func(*os.File), rawCols string) {
	path := filepath.Join(b.TempDir(), kind+".csv")
	f, err := os.Create(path)
	require.NoError(b, err)
	write(f)
	require.NoError(b, f.Close())
	ctx := context.Background()

	var copySecs, importSecs float64
	for b.Loop() {
		b.StopTimer()
		db := testdb.New(b)
		_, err := db.Pool.Exec(ctx, "CREATE TABLE raw_rows ("+rawCols+")")
		require.NoError(b, err)
		b.StartTimer()

		start := time.Now()
		conn, err := db.Pool.Acquire(ctx)
		require.NoError(b, err)
		in, err := os.Open(path)
		require.NoError(b, err)
		_, err = conn.Conn().PgConn().CopyFrom(ctx, in, "COPY raw_rows FROM STDIN (FORMAT csv, HEADER true)")
		require.NoError(b, err)
		_ = in.Close()
		conn.Release()
		copySecs += time.Since(start).Seconds()

		in, err = os.Open(path)
		require.NoError(b, err)
		start = time.Now()
		sum, err := csvimport.Run(ctx, db.Pool, in, csvimport.RunOptions{
			Kind: kind, InitialStage: "reach", Version: "bench", Now: time.Now(),
		})
		require.NoError(b, err)
		importSecs += time.Since(start).Seconds()
		_ = in.Close()
		require.EqualValues(b, rows, sum.Created)
		table, want := "customers", rows
		if kind == csvimport.KindOrders {
			table = "events"
		}
		var n int
		require.NoError(b, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n)
		}))
		require.Equal(b, want, n)
	}
	copyRate := float64(rows*b.N) / copySecs
	importRate := float64(rows*b.N) / importSecs
	b.ReportMetric(copyRate, "copy_rows/s")
	b.ReportMetric(importRate, "import_rows/s")
	b.ReportMetric(importRate/copyRate, "ratio")
}
