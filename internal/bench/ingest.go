package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ciclohq/ciclo/internal/app"
)

// ingestClients is the concurrent clients of the single-event row, and the
// baseline's connections.
const ingestClients = 8

// ingestBatch is the events per request of the batch row, and the rows per
// INSERT of its baseline.
const ingestBatch = 1000

// ingestRules has an event rule for the ingested events, so that each is
// stored with its evaluate job queued, as in production (an API process
// only enqueues; nothing is evaluated during the row).
const ingestRules = `version: 1
rules:
  - {name: order-email, on: order_placed, actions: [{email: {template: welcome}}]}
`

// baselineTable is the scratch table of the INSERT baselines, in the row's
// schema: the shape of pgbench's custom INSERT script.
const baselineTable = `CREATE TABLE bench_insert (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	customer_id text NOT NULL, payload jsonb NOT NULL, at timestamptz NOT NULL)`

// ingest measures the events API: one event per request from
// ingestClients clients vs as many connections doing single-row INSERTs,
// and ingestBatch events per request vs one multi-row INSERT of as many
// rows per transaction. The process runs the API role alone.
func (r *runner) ingest(ctx context.Context) ([]Row, error) {
	r.progress("ingest: starting ciclo (API role) on a fresh schema")
	e, err := r.newEnv(ctx, envOptions{role: app.RoleAPI, rules: ingestRules})
	if err != nil {
		return nil, err
	}
	defer e.close()
	if _, err := e.pool.Exec(ctx, baselineTable); err != nil {
		return nil, fmt.Errorf("create baseline table: %w", err)
	}
	d := r.sizes.ingestFor
	var seq atomic.Int64 // idempotency keys, unique over the row

	ResetPeakRSS()
	single, err := r.measure(ctx,
		func(ctx context.Context) (float64, error) { return insertRate(ctx, e, ingestClients, 1, d) },
		func(ctx context.Context, _ int) (float64, map[string]float64, error) {
			rate, err := apiRate(ctx, e, ingestClients, 1, d, &seq)
			return rate, nil, err
		})
	if err != nil {
		return nil, fmt.Errorf("single: %w", err)
	}
	rows := []Row{r.finish(Row{Name: "ingest/single", Size: fmt.Sprintf("%d clients, 1 event/request", ingestClients),
		Unit: "events/s", Baseline: fmt.Sprintf("single-row INSERT/s, %d connections", ingestClients)}, single, false, 0.5)}

	ResetPeakRSS()
	batch, err := r.measure(ctx,
		func(ctx context.Context) (float64, error) { return insertRate(ctx, e, 1, ingestBatch, d) },
		func(ctx context.Context, _ int) (float64, map[string]float64, error) {
			rate, err := apiRate(ctx, e, 1, ingestBatch, d, &seq)
			return rate, nil, err
		})
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	rows = append(rows, r.finish(Row{Name: "ingest/batch", Size: fmt.Sprintf("1 client, %d events/request", ingestBatch),
		Unit: "events/s", Baseline: fmt.Sprintf("rows/s of one %d-row INSERT per transaction", ingestBatch)}, batch, false, 0.1))
	return rows, nil
}

// apiRate posts order events, per events a request, from clients
// concurrent clients for d, and returns the events accepted per second.
func apiRate(ctx context.Context, e *env, clients, per int, d time.Duration, seq *atomic.Int64) (float64, error) {
	var done atomic.Int64
	elapsed, err := forEachClient(clients, d, func(client int) error {
		var sb strings.Builder
		if per > 1 {
			sb.WriteByte('[')
		}
		for i := range per {
			if i > 0 {
				sb.WriteByte(',')
			}
			n := seq.Add(1)
			c := n % 5000
			fmt.Fprintf(&sb, `{"customer_id":"c-%d","type":"order_placed","idempotency_key":"o-%d","email":"c%d@example.com","properties":{"total":12.5}}`, c, n, c)
		}
		if per > 1 {
			sb.WriteByte(']')
		}
		if err := e.postEvents(ctx, sb.String()); err != nil {
			return err
		}
		done.Add(int64(per))
		return nil
	})
	return float64(done.Load()) / elapsed.Seconds(), err
}

// insertRate runs the baseline: clients connections each inserting per
// rows per transaction (one statement) into bench_insert for d, and returns
// rows per second.
func insertRate(ctx context.Context, e *env, clients, per int, d time.Duration) (float64, error) {
	var sb strings.Builder
	sb.WriteString("INSERT INTO bench_insert (customer_id, payload, at) VALUES ")
	for i := range per {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `('c-%d', '{"total": 12.5}', now())`, i%5000)
	}
	sql := sb.String()
	var done atomic.Int64
	elapsed, err := forEachClient(clients, d, func(int) error {
		if _, err := e.pool.Exec(ctx, sql); err != nil { // autocommit: one transaction
			return fmt.Errorf("insert: %w", err)
		}
		done.Add(int64(per))
		return nil
	})
	return float64(done.Load()) / elapsed.Seconds(), err
}

// forEachClient runs fn in a loop on clients goroutines until d has passed
// and returns how long they took, the calls in flight at the deadline
// included, and the first error.
func forEachClient(clients int, d time.Duration, fn func(client int) error) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := fn(c); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return time.Since(start), <-errs
}

// postEvents posts a body to /v1/events, again after a 503 (the API's
// "not stored, retry": an overloaded database), up to postTries times;
// anything else but 202 is an error.
func (e *env) postEvents(ctx context.Context, body string) error {
	var err error
	for try := range postTries {
		if try > 0 {
			time.Sleep(time.Duration(try) * 100 * time.Millisecond)
		}
		var status int
		if status, err = e.post(ctx, body); status != http.StatusServiceUnavailable {
			return err
		}
	}
	return err
}

// postTries bounds postEvents' attempts.
const postTries = 5

func (e *env) post(ctx context.Context, body string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+"/v1/events", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post events: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return resp.StatusCode, fmt.Errorf("post events: status %d: %s", resp.StatusCode, b)
	}
	return resp.StatusCode, nil
}
