package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/worker"
)

// TestPointsExpiryWorker covers the points expiry sweep: lots past their
// expiry are closed in batches (what is left becomes an expiry entry, the
// balance drops) with one points_expired event each; lots expiring within
// defaults.points_expiring_days get one points_expiring event each, once;
// and every event's evaluation is enqueued.
func TestPointsExpiryWorker(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	rs, err := rules.Parse("r.yaml", []byte(`version: 1
defaults: { points_expiring_days: 5 }
rules:
  - name: remind
    on: points_expiring
    actions: [{stage: retention}]
`), rules.ParseOptions{})
	require.NoError(t, err)
	holder := rules.NewHolder(rs)
	client, err := worker.NewClient(db.Pool, &worker.Config{Rules: holder, InsertOnly: true, Schema: db.Schema})
	require.NoError(t, err)
	st := store.New(db.Pool)
	for _, id := range []string{"a", "b"} {
		_, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: id, Type: "signed_up", OccurredAt: at, ReceivedAt: at}, "reach", "v1")
		require.NoError(t, err)
	}
	_, err = st.GrantPoints(ctx, []store.PointsGrantReq{
		{CustomerID: "a", Amount: 100, Reason: "r", GrantedAt: at, ExpiresAt: at.Add(3 * day), Key: "a1"},
		{CustomerID: "a", Amount: 50, Reason: "r", GrantedAt: at, ExpiresAt: at.Add(8 * day), Key: "a2"},
		{CustomerID: "a", Amount: 30, Reason: "r", GrantedAt: at, ExpiresAt: at.Add(30 * day), Key: "a3"},
		{CustomerID: "b", Amount: 20, Reason: "r", GrantedAt: at, ExpiresAt: at.Add(4 * day), Key: "b1"},
		{CustomerID: "b", Amount: 10, Reason: "r", GrantedAt: at, Key: "b2"}, // never expires
	})
	require.NoError(t, err)
	// a spends 60: from a1, which expires first.
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = store.New(tx).RedeemPoints(ctx, "a", 60, "o-1", "k", at.Add(time.Hour))
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	now := at.Add(4*day + time.Hour)
	w := worker.NewPointsExpiryWorker(db.Pool, holder, func() time.Time { return now }, 1)
	stats, err := w.Run(ctx, client)
	require.NoError(t, err)
	require.Equal(t, worker.PointsExpiryStats{Expired: 2, Reminded: 1}, stats)
	require.Equal(t, 1, db.Count(t, "events", "customer_id = 'a' AND type = 'points_expired' AND (properties->>'points')::int = 40"))
	require.Equal(t, 1, db.Count(t, "events", "customer_id = 'b' AND type = 'points_expired' AND (properties->>'points')::int = 20"))
	require.Equal(t, 1, db.Count(t, "events", "customer_id = 'a' AND type = 'points_expiring' AND (properties->>'points')::int = 50"))
	require.Equal(t, 0, db.Count(t, "events", "type = 'points_expiring' AND (properties->>'points')::int <> 50"))
	require.Equal(t, 3, db.Count(t, "river_job", "kind = 'ciclo.evaluate'"))
	for id, want := range map[string]int64{"a": 80, "b": 10} {
		sum, err := st.PointsSummary(ctx, id, now)
		require.NoError(t, err)
		require.Equal(t, want, sum.Balance, id)
	}

	stats, err = w.Run(ctx, client)
	require.NoError(t, err)
	require.Equal(t, worker.PointsExpiryStats{}, stats, "each lot is expired and reminded of once")
	require.Equal(t, 3, db.Count(t, "events", "type LIKE 'points_%'"))

	// A customer's lots closed in one batch make one points_expired event;
	// batches follow one another by cursor and miss none.
	for _, tc := range []struct {
		customer   string
		batch      int
		wantEvents int
	}{{customer: "c", batch: 10, wantEvents: 1}, {customer: "d", batch: 2, wantEvents: 2}} {
		_, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: tc.customer, Type: "signed_up", OccurredAt: at, ReceivedAt: at}, "reach", "v1")
		require.NoError(t, err)
		var grants []store.PointsGrantReq
		for i := range 3 {
			grants = append(grants, store.PointsGrantReq{CustomerID: tc.customer, Amount: int64(10 * (i + 1)), Reason: "r", GrantedAt: at,
				ExpiresAt: at.Add(time.Duration(i+1) * time.Hour), Key: tc.customer + itoa(int64(i))})
		}
		_, err = st.GrantPoints(ctx, grants)
		require.NoError(t, err)
		stats, err := worker.NewPointsExpiryWorker(db.Pool, holder, func() time.Time { return now }, tc.batch).Run(ctx, client)
		require.NoError(t, err)
		require.Equal(t, 3, stats.Expired, tc.customer)
		require.Equal(t, tc.wantEvents, db.Count(t, "events", "customer_id = '"+tc.customer+"' AND type = 'points_expired'"), tc.customer)
		require.Equal(t, 60, sumPoints(t, db, tc.customer), tc.customer)
		sum, err := st.PointsSummary(ctx, tc.customer, now)
		require.NoError(t, err)
		require.Zero(t, sum.Balance, tc.customer)
	}
	require.Equal(t, 1, db.Count(t, "events", "customer_id = 'c' AND type = 'points_expired' AND jsonb_array_length(properties->'lot_ids') = 3"))
}

// sumPoints adds up the points of a customer's points_expired events.
func sumPoints(t *testing.T, db *testdb.DB, customer string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		"SELECT COALESCE(sum((properties->>'points')::int), 0) FROM events WHERE customer_id = $1 AND type = 'points_expired'", customer).Scan(&n))
	return n
}

// TestPointsExpiringPerCustomer checks that the reminders of a batch are
// one points_expiring event per customer, whatever its number of lots,
// with their points summed, every lot's id and the earliest expiry; and
// that each lot is reminded of once.
func TestPointsExpiringPerCustomer(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	rs, err := rules.Parse("r.yaml", []byte("version: 1\ndefaults: { points_expiring_days: 5 }\nrules:\n  - {name: a, on: points_expiring, actions: [{stage: retention}]}\n"), rules.ParseOptions{})
	require.NoError(t, err)
	holder := rules.NewHolder(rs)
	client, err := worker.NewClient(db.Pool, &worker.Config{Rules: holder, InsertOnly: true, Schema: db.Schema})
	require.NoError(t, err)
	st := store.New(db.Pool)
	for _, id := range []string{"a", "b"} {
		_, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: id, Type: "signed_up", OccurredAt: at, ReceivedAt: at}, "reach", "v1")
		require.NoError(t, err)
	}
	_, err = st.GrantPoints(ctx, []store.PointsGrantReq{
		{CustomerID: "a", Amount: 10, Reason: "r", GrantedAt: at, ExpiresAt: at.Add(3 * day), Key: "a1"},
		{CustomerID: "a", Amount: 20, Reason: "r", GrantedAt: at, ExpiresAt: at.Add(2 * day), Key: "a2"},
		{CustomerID: "a", Amount: 30, Reason: "r", GrantedAt: at, ExpiresAt: at.Add(4 * day), Key: "a3"},
		{CustomerID: "a", Amount: 40, Reason: "r", GrantedAt: at, ExpiresAt: at.Add(9 * day), Key: "a4"}, // not within 5 days
		{CustomerID: "b", Amount: 5, Reason: "r", GrantedAt: at, ExpiresAt: at.Add(day), Key: "b1"},
	})
	require.NoError(t, err)

	w := worker.NewPointsExpiryWorker(db.Pool, holder, func() time.Time { return at }, 0)
	stats, err := w.Run(ctx, client)
	require.NoError(t, err)
	require.Equal(t, worker.PointsExpiryStats{Reminded: 4}, stats)
	require.Equal(t, 2, db.Count(t, "events", "type = 'points_expiring'"), "one event per customer")
	require.Equal(t, 1, db.Count(t, "events", "customer_id = 'a' AND type = 'points_expiring' AND (properties->>'points')::int = 60"+
		" AND jsonb_array_length(properties->'lot_ids') = 3 AND (properties->>'expires_at')::timestamptz = $1", at.Add(2*day)))
	require.Equal(t, 1, db.Count(t, "events", "customer_id = 'b' AND type = 'points_expiring' AND (properties->>'points')::int = 5"))
	require.Equal(t, 2, db.Count(t, "river_job", "kind = 'ciclo.evaluate'"))

	stats, err = w.Run(ctx, client)
	require.NoError(t, err)
	require.Equal(t, worker.PointsExpiryStats{}, stats, "each lot is reminded of once")
	require.Equal(t, 2, db.Count(t, "events", "type = 'points_expiring'"))
}
