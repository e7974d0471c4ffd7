package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
)

// TestSweepReadsPoints checks that a sweep reads the points fields rules
// see: the ledger's balance, pending points, the earliest expiry of the
// available ones at the sweep's time, and the tier; and that
// PointsSummary (the event path) agrees.
func TestSweepReadsPoints(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	st := store.New(db.Pool)
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	for _, id := range []string{"a", "b"} {
		_, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: id, Type: "signed_up", OccurredAt: at, ReceivedAt: at}, "reach", "v1")
		require.NoError(t, err)
	}
	_, err := st.GrantPoints(ctx, []store.PointsGrantReq{
		{CustomerID: "a", Amount: 100, Reason: "r", GrantedAt: at, ExpiresAt: at.Add(10 * day), Key: "1"},
		{CustomerID: "a", Amount: 40, Reason: "r", GrantedAt: at, ExpiresAt: at.Add(5 * day), Key: "2"},
		{CustomerID: "a", Amount: 7, Reason: "r", GrantedAt: at, AvailableAt: at.Add(day), ExpiresAt: at.Add(2 * day), Key: "3"},
	})
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, "UPDATE customers SET tier = 'gold' WHERE id = 'a'")
	require.NoError(t, err)

	sq := store.NewSweepQuery([]string{"points_balance", "points_pending", "points_expiring_at", "tier"}, nil)
	now := at.Add(time.Hour)
	page, err := st.SweepPage(ctx, sq, now, "", "", 10, nil)
	require.NoError(t, err)
	require.Len(t, page, 2)
	a, b := page[0], page[1]
	require.Equal(t, int64(147), a.PointsBalance)
	require.Equal(t, int64(7), a.PointsPending)
	require.True(t, a.PointsExpiringAt.Equal(at.Add(5*day)), "earliest available expiry: %s", a.PointsExpiringAt)
	require.Equal(t, "gold", a.Tier)
	require.Equal(t, store.Customer{ID: "b"}, b)

	sum, err := st.PointsSummary(ctx, "a", now)
	require.NoError(t, err)
	require.True(t, sum.NextExpiry.Equal(at.Add(5*day)), "%s", sum.NextExpiry)
	sum.NextExpiry = time.Time{}
	require.Equal(t, store.PointsSummary{Balance: 147, Pending: 7, Tier: "gold"}, sum)

	// Past the first expiry (before the sweep closed the lot) the next one shows.
	page, err = st.SweepPage(ctx, sq, at.Add(6*day), "", "a", 10, nil)
	require.NoError(t, err)
	require.True(t, page[0].PointsExpiringAt.Equal(at.Add(10*day)), "%s", page[0].PointsExpiringAt)
}
