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
}
