package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
)

// TestIngestSetEquivalence ingests the same random batches through the
// set-based path (IngestEventsQueued on a pool) and the per-event path into
// two schemas, and requires the same answers and the same rows: events
// (facts snapshots included; ids compared by their order), customers, stage
// transitions and evaluate jobs. The batches mix customers with one event
// (the set-based statement's) and with several, repeated and conflicting
// idempotency keys, orders, refunds and cancellations.
func TestIngestSetEquivalence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setDB, refDB := testdb.New(t), testdb.New(t)
	set, ref := store.New(setDB.Pool), store.New(refDB.Pool).PerEvent()
	job := &store.EvaluationJob{Kind: "ciclo.evaluate", Queue: "evaluate", MaxAttempts: 25, Priority: 1}
	rng := rand.New(rand.NewPCG(18, 31))
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

	type sent struct {
		e     *store.NewEvent
		order string // its order_id, for an order
	}
	var (
		history  = map[string][]sent{} // per customer, the events sent so far
		orders   = map[string][]string{}
		seq      int
		setRows  int // events the set-based statement stored
		conflict int // batches refused for a reused key
		dups     int
	)
	hash := func(e *store.NewEvent) []byte {
		h := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%s|%v|%v|%s", e.CustomerID, e.Type, e.IdempotencyKey, e.Properties, e.Attributes, e.Email))
		return h[:]
	}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	newEvent := func(customer string) sent {
		seq++
		at := base.Add(time.Duration(rng.IntN(90*24)) * time.Hour)
		e := &store.NewEvent{CustomerID: customer, OccurredAt: at, ReceivedAt: base.Add(time.Duration(seq) * time.Second),
			OrderTypes: []string{"order_placed"}}
		if rng.IntN(4) > 0 {
			e.IdempotencyKey = fmt.Sprintf("k-%d", seq)
		}
		if rng.IntN(3) == 0 {
			e.Email = pick([]string{"a@example.com", "b@example.com", customer + "@example.com"})
		}
		if rng.IntN(4) == 0 {
			e.Name = pick([]string{"Ana", "Bo", "Cy"})
		}
		if rng.IntN(5) == 0 {
			e.Timezone = pick([]string{"UTC", "Europe/Madrid", "Asia/Tokyo"})
		}
		if rng.IntN(3) == 0 {
			e.Attributes = map[string]any{pick([]string{"plan", "vip", "source"}): pick([]string{"a", "b", "c"})}
			if rng.IntN(2) == 0 {
				e.Attributes["n"] = float64(rng.IntN(5))
			}
		}
		var order string
		switch r := rng.IntN(10); {
		case r < 4:
			order = fmt.Sprintf("o-%d", seq)
			total := float64(rng.IntN(20000)) / 100
			e.Type, e.IsOrder, e.OrderTotal = "order_placed", true, total
			e.Properties = map[string]any{"order_id": order, "total": total}
		case r < 6 && len(orders[customer]) > 0:
			e.Type = "order_refunded"
			e.Properties = map[string]any{"order_id": pick(orders[customer]), "amount": float64(rng.IntN(8000)) / 100}
		case r < 7 && len(orders[customer]) > 0:
			e.Type = "order_cancelled"
			e.Properties = map[string]any{"order_id": pick(orders[customer])}
		case r < 8:
			e.Type = "order_refunded" // of an unknown order: changes nothing
			e.Properties = map[string]any{"order_id": "nope", "amount": 5.0}
		default:
			e.Type = pick([]string{"signed_up", "page_viewed"})
		}
		if e.IdempotencyKey != "" && rng.IntN(6) > 0 {
			e.PayloadHash = hash(e)
		}
		return sent{e: e, order: order}
	}

	customers := make([]string, 14)
	for i := range customers {
		customers[i] = fmt.Sprintf("c-%02d", i)
	}
	for batch := range 160 {
		// Half the batches have each customer once (all set-based), the
		// others repeat customers (set-based runs between per-event ones).
		n := 1 + rng.IntN(12)
		var ids []string
		if batch%2 == 0 {
			perm := rng.Perm(len(customers))
			for _, k := range perm[:n] {
				ids = append(ids, customers[k])
			}
		} else {
			for range n {
				ids = append(ids, customers[rng.IntN(len(customers))])
			}
		}
		var events []*store.NewEvent
		var fresh []sent
		for _, c := range ids {
			switch h := history[c]; {
			case len(h) > 0 && rng.IntN(6) == 0: // a retry of an earlier event
				events = append(events, h[rng.IntN(len(h))].e)
			case len(h) > 0 && rng.IntN(25) == 0: // a reused key, another payload
				old := h[rng.IntN(len(h))].e
				e := *old
				e.Properties = map[string]any{"changed": true}
				if old.PayloadHash != nil {
					e.PayloadHash = hash(&e)
				}
				events = append(events, &e)
			default:
				s := newEvent(c)
				if len(fresh) > 0 && rng.IntN(8) == 0 && fresh[len(fresh)-1].e.CustomerID == c && fresh[len(fresh)-1].e.IdempotencyKey != "" {
					// The same event twice in one batch.
					s.e = fresh[len(fresh)-1].e
				}
				fresh = append(fresh, s)
				events = append(events, s.e)
			}
		}
		// The store's callers pass events in lock order.
		sortByCustomer(events)

		setRes, setErr := set.IngestEventsQueued(ctx, events, "reach", "v1", job)
		refRes, refErr := ref.IngestEventsQueued(ctx, events, "reach", "v1", job)
		setRank, refRank := eventRanks(t, setDB), eventRanks(t, refDB)
		if refErr != nil {
			var want *store.IdempotencyConflictError
			require.ErrorAs(t, refErr, &want, "batch %d", batch)
			var got *store.IdempotencyConflictError
			require.ErrorAs(t, setErr, &got, "batch %d: the per-event path refused it", batch)
			require.Equal(t, []any{want.CustomerID, want.Key, want.Index, want.FirstIndex}, []any{got.CustomerID, got.Key, got.Index, got.FirstIndex}, "batch %d", batch)
			if want.FirstIndex < 0 {
				require.Equal(t, refRank[want.EventID], setRank[got.EventID], "batch %d: conflicting event", batch)
			}
			conflict++
			continue
		}
		require.NoError(t, setErr, "batch %d", batch)
		require.Len(t, setRes, len(refRes))
		inBatch := map[string]int{}
		for _, e := range events {
			inBatch[e.CustomerID]++
		}
		for i := range refRes {
			require.Equal(t, refRes[i].Duplicate, setRes[i].Duplicate, "batch %d event %d", batch, i)
			require.Equal(t, refRes[i].NewCustomer, setRes[i].NewCustomer, "batch %d event %d", batch, i)
			require.Equal(t, refRank[refRes[i].EventID], setRank[setRes[i].EventID], "batch %d event %d: id", batch, i)
			if inBatch[events[i].CustomerID] == 1 && len(inBatch) > 1 && !setRes[i].Duplicate {
				setRows++ // stored by a run of several events
			}
			if refRes[i].Duplicate {
				dups++
			}
		}
		for _, s := range fresh {
			c := s.e.CustomerID
			history[c] = append(history[c], s)
			if s.order != "" {
				orders[c] = append(orders[c], s.order)
			}
		}
		requireSameRows(t, batch, setDB, refDB)
	}
	t.Logf("%d set-based events, %d duplicates, %d batches refused", setRows, dups, conflict)
	require.Greater(t, setRows, 200, "the set-based statement stored too few events to compare")
	require.Greater(t, dups, 20)
	require.Greater(t, conflict, 2)
	requireSameRows(t, -1, setDB, refDB)
}

func sortByCustomer(events []*store.NewEvent) {
	for i := 1; i < len(events); i++ { // stable insertion sort: the test's batches are small
		for j := i; j > 0 && events[j].CustomerID < events[j-1].CustomerID; j-- {
			events[j], events[j-1] = events[j-1], events[j]
		}
	}
}

// eventRanks maps each event id of db to its position in id order.
func eventRanks(t *testing.T, db *testdb.DB) map[int64]int {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT id FROM events ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		out[id] = len(out)
	}
	require.NoError(t, rows.Err())
	return out
}

// requireSameRows compares the rows ingest writes in two schemas, event ids
// replaced by their order.
func requireSameRows(t *testing.T, batch int, a, b *testdb.DB) {
	t.Helper()
	for _, q := range []string{
		`SELECT row_number() OVER (ORDER BY id), customer_id, type, properties, occurred_at, received_at,
		        idempotency_key, facts, payload_hash, evaluated_at FROM events ORDER BY id`,
		`SELECT * FROM customers ORDER BY id`,
		`SELECT customer_id, from_stage, to_stage, rule, rule_set_version, occurred_at FROM stage_transitions ORDER BY id`,
		`SELECT j.args->>'customer_id', r.rank, j.kind, j.queue, j.max_attempts, j.priority, j.state
		 FROM river_job j JOIN (SELECT id, row_number() OVER (ORDER BY id) AS rank FROM events) r ON r.id = (j.args->>'event_id')::bigint
		 ORDER BY j.id`,
	} {
		got, want := dump(t, a, q), dump(t, b, q)
		for i := range min(len(got), len(want)) {
			require.Equal(t, want[i], got[i], "batch %d, row %d of %s", batch, i, q)
		}
		require.Len(t, got, len(want), "batch %d: %s", batch, q)
	}
}

func dump(t *testing.T, db *testdb.DB, q string) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), q)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		v, err := rows.Values()
		require.NoError(t, err)
		out = append(out, fmt.Sprintf("%v", v))
	}
	require.NoError(t, rows.Err())
	if out == nil {
		require.NoError(t, errors.New("no rows: "+q))
	}
	return out
}
