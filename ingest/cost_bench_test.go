package ingest_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/internal/testdb"
)

// BenchmarkIngestCost measures what an ingested event costs in CPU, in
// this process and in the database's backends, besides events/s: on a
// shared, loaded machine CPU per event is far steadier than a rate.
//
//	go test ./ingest -run '^$' -bench IngestCost -benchtime 4000x
func BenchmarkIngestCost(b *testing.B) {
	for _, tc := range []struct {
		name         string
		clients, per int
	}{{"single/clients=8", 8, 1}, {"batch=1000", 1, 1000}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			db := testdb.New(b)
			svc := newService(db)
			var seq atomic.Int64
			calls := (b.N + tc.per - 1) / tc.per
			var next atomic.Int64
			pg0 := backendCPU(b, db)
			self0 := selfCPU()
			start := time.Now()
			var wg sync.WaitGroup
			for range tc.clients {
				wg.Go(func() {
					for next.Add(1) <= int64(calls) {
						evs := make([]*ingest.Event, tc.per)
						for i := range evs {
							n := seq.Add(1)
							c := n % 5000
							evs[i] = &ingest.Event{CustomerID: fmt.Sprintf("c-%d", c), Type: "order_placed",
								IdempotencyKey: fmt.Sprintf("o-%d", n), Email: fmt.Sprintf("c%d@example.com", c),
								Properties: map[string]any{"total": 12.5}}
						}
						if _, err := svc.Ingest(ctx, evs, ingest.Options{Batch: tc.per > 1}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			events := float64(calls * tc.per)
			b.ReportMetric(events/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64((selfCPU()-self0).Microseconds())/events, "go_cpu_us/event")
			b.ReportMetric(float64((backendCPU(b, db)-pg0).Microseconds())/events, "pg_cpu_us/event")
		})
	}
}

// selfCPU is this process' user and system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendCPU sums the CPU time of the database's backends (the test
// database is this process' alone), from /proc.
func backendCPU(b *testing.B, db *testdb.DB) time.Duration {
	rows, err := db.Pool.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var ticks int64
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
