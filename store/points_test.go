package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
)

func TestPoints(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour

	newCustomer := func(t *testing.T, st *store.Store, id string) {
		t.Helper()
		_, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: id, Type: "signed_up", OccurredAt: at, ReceivedAt: at}, "reach", "v1")
		require.NoError(t, err)
	}
	grant := func(t *testing.T, st *store.Store, g store.PointsGrantReq) store.PointsGranted {
		t.Helper()
		if g.GrantedAt.IsZero() {
			g.GrantedAt = at
		}
		if g.Reason == "" {
			g.Reason = "test"
		}
		out, err := st.GrantPoints(ctx, []store.PointsGrantReq{g})
		require.NoError(t, err)
		require.Len(t, out, 1)
		return out[0]
	}
	lotsLeft := func(t *testing.T, tx pgx.Tx, customer string) map[string]int64 {
		t.Helper()
		rows, err := tx.Query(ctx, "SELECT idempotency_key, remaining FROM points_lots WHERE customer_id = $1", customer)
		require.NoError(t, err)
		out := map[string]int64{}
		for rows.Next() {
			var (
				k string
				n int64
			)
			require.NoError(t, rows.Scan(&k, &n))
			out[k] = n
		}
		require.NoError(t, rows.Err())
		return out
	}
	// ledgerHolds checks the ledger's invariant: the balance is the sum of
	// the entries, and each lot's remainder is its grant less its entries.
	ledgerHolds := func(t *testing.T, tx pgx.Tx, customer string) {
		t.Helper()
		require.Zero(t, count(t, tx, `
			SELECT count(*) FROM points_lots l
			WHERE customer_id = $1 AND remaining <> (SELECT sum(amount) FROM points_entries e WHERE e.customer_id = l.customer_id AND e.lot_id = l.id)`, customer),
			"a lot's remainder differs from the sum of its entries")
	}

	t.Run("GrantIsIdempotent", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		newCustomer(t, st, "g")
		first := grant(t, st, store.PointsGrantReq{CustomerID: "g", Amount: 100, Key: "firing:1"})
		again := grant(t, st, store.PointsGrantReq{CustomerID: "g", Amount: 100, Key: "firing:1"})
		require.True(t, first.Created)
		require.False(t, again.Created)
		require.Equal(t, first.LotID, again.LotID)
		p, err := st.PointsSummary(ctx, "g", at)
		require.NoError(t, err)
		require.EqualValues(t, 100, p.Balance)
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM points_entries WHERE customer_id = 'g'"))
	})

	t.Run("SpendTakesSoonestExpiryFirst", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		newCustomer(t, st, "s")
		grant(t, st, store.PointsGrantReq{CustomerID: "s", Amount: 50, Key: "late", ExpiresAt: at.Add(30 * day)})
		grant(t, st, store.PointsGrantReq{CustomerID: "s", Amount: 30, Key: "soon", ExpiresAt: at.Add(5 * day)})
		grant(t, st, store.PointsGrantReq{CustomerID: "s", Amount: 20, Key: "never"})
		op, err := st.RedeemPoints(ctx, "s", 60, "order-1", "redeem-1", at.Add(day))
		require.NoError(t, err)
		require.False(t, op.Duplicate)
		require.Equal(t, map[string]int64{"soon": 0, "late": 20, "never": 20}, lotsLeft(t, b.tx, "s"))
		p, err := st.PointsSummary(ctx, "s", at.Add(day))
		require.NoError(t, err)
		require.EqualValues(t, 40, p.Balance)
		require.True(t, p.NextExpiry.Equal(at.Add(30*day)), "the spent lot no longer counts for the next expiry")
		ledgerHolds(t, b.tx, "s")
	})

	t.Run("InsufficientChangesNothing", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		newCustomer(t, st, "i")
		grant(t, st, store.PointsGrantReq{CustomerID: "i", Amount: 10, Key: "a"})
		_, err := st.RedeemPoints(ctx, "i", 11, "", "r", at)
		require.ErrorIs(t, err, store.ErrInsufficientPoints)
		require.ErrorContains(t, err, "asked to spend 11 points, 10 available")
		require.Zero(t, count(t, b.tx, "SELECT count(*) FROM points_operations WHERE customer_id = 'i'"))
		require.Equal(t, map[string]int64{"a": 10}, lotsLeft(t, b.tx, "i"))
	})

	t.Run("PendingLotsAreNotSpendable", func(t *testing.T) {
		t.Parallel()
		st, _ := setup(t, db)
		newCustomer(t, st, "p")
		grant(t, st, store.PointsGrantReq{CustomerID: "p", Amount: 40, Key: "pending", AvailableAt: at.Add(14 * day), ExpiresAt: at.Add(60 * day)})
		p, err := st.PointsSummary(ctx, "p", at)
		require.NoError(t, err)
		require.EqualValues(t, 40, p.Balance)
		require.EqualValues(t, 40, p.Pending)
		_, err = st.RedeemPoints(ctx, "p", 1, "", "r1", at)
		require.ErrorIs(t, err, store.ErrInsufficientPoints)
		_, err = st.RedeemPoints(ctx, "p", 40, "", "r2", at.Add(15*day))
		require.NoError(t, err, "spendable once the pending period ends")
	})

	t.Run("ExpiryOfPartlySpentLot", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		newCustomer(t, st, "e")
		grant(t, st, store.PointsGrantReq{CustomerID: "e", Amount: 100, Key: "lot", ExpiresAt: at.Add(10 * day)})
		grant(t, st, store.PointsGrantReq{CustomerID: "e", Amount: 5, Key: "keep", ExpiresAt: at.Add(100 * day)})
		_, err := st.RedeemPoints(ctx, "e", 30, "", "r", at.Add(day))
		require.NoError(t, err)
		// The sweep sees lots of every customer; this one's is among them.
		expired, err := st.ExpirePoints(ctx, at.Add(10*day), 1000, store.ExpireCursor{})
		require.NoError(t, err)
		var mine []store.PointsExpired
		for _, e := range expired.Customers {
			if e.CustomerID == "e" {
				mine = append(mine, e)
			}
		}
		require.Len(t, mine, 1)
		require.EqualValues(t, 70, mine[0].Points)
		again, err := st.ExpirePoints(ctx, at.Add(11*day), 1000, store.ExpireCursor{})
		require.NoError(t, err)
		for _, e := range again.Customers {
			require.NotEqual(t, "e", e.CustomerID, "a lot expires once")
		}
		p, err := st.PointsSummary(ctx, "e", at.Add(11*day))
		require.NoError(t, err)
		require.EqualValues(t, 5, p.Balance)
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM points_entries WHERE customer_id = 'e' AND kind = 'expire' AND amount = -70"))
		ledgerHolds(t, b.tx, "e")
	})

	t.Run("ReversalTakesLeftThenOthersThenDebt", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		newCustomer(t, st, "r")
		grant(t, st, store.PointsGrantReq{CustomerID: "r", Amount: 100, Key: "order-9", OrderID: "9", ExpiresAt: at.Add(30 * day)})
		grant(t, st, store.PointsGrantReq{CustomerID: "r", Amount: 30, Key: "bonus", ExpiresAt: at.Add(20 * day)})
		// 30 from the bonus (expires first), then 50 from the order's lot.
		_, err := st.RedeemPoints(ctx, "r", 80, "", "spend", at.Add(day))
		require.NoError(t, err)
		op, err := st.ReverseOrderPoints(ctx, "r", "9", "refund", "reverse:9", at.Add(2*day))
		require.NoError(t, err)
		require.EqualValues(t, 100, op.Points)
		require.EqualValues(t, 50, op.Debt, "50 left on the order's lot, nothing else to take")
		p, err := st.PointsSummary(ctx, "r", at.Add(2*day))
		require.NoError(t, err)
		require.EqualValues(t, -50, p.Balance)
		_, err = st.RedeemPoints(ctx, "r", 1, "", "spend-2", at.Add(2*day))
		require.ErrorIs(t, err, store.ErrInsufficientPoints)
		// A later grant covers the debt first.
		grant(t, st, store.PointsGrantReq{CustomerID: "r", Amount: 60, Key: "later"})
		_, err = st.RedeemPoints(ctx, "r", 11, "", "spend-3", at.Add(3*day))
		require.ErrorIs(t, err, store.ErrInsufficientPoints)
		_, err = st.RedeemPoints(ctx, "r", 10, "", "spend-4", at.Add(3*day))
		require.NoError(t, err)
		// The reversal is keyed: a second refund webhook changes nothing.
		dup, err := st.ReverseOrderPoints(ctx, "r", "9", "refund", "reverse:9", at.Add(4*day))
		require.NoError(t, err)
		require.True(t, dup.Duplicate)
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM points_entries WHERE customer_id = 'r' AND kind = 'debt'"))
		ledgerHolds(t, b.tx, "r")
	})

	t.Run("ReversalOfPendingPoints", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		newCustomer(t, st, "rp")
		grant(t, st, store.PointsGrantReq{CustomerID: "rp", Amount: 25, Key: "o", OrderID: "o-1", AvailableAt: at.Add(14 * day)})
		op, err := st.ReverseOrderPoints(ctx, "rp", "o-1", "cancelled", "reverse:o-1", at.Add(day))
		require.NoError(t, err)
		require.Zero(t, op.Debt)
		require.Equal(t, map[string]int64{"o": 0}, lotsLeft(t, b.tx, "rp"))
	})

	t.Run("KeyReusedForOtherPoints", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		newCustomer(t, st, "k")
		grant(t, st, store.PointsGrantReq{CustomerID: "k", Amount: 50, Key: "a"})
		first, err := st.RedeemPoints(ctx, "k", 10, "o-1", "same", at)
		require.NoError(t, err)
		again, err := st.RedeemPoints(ctx, "k", 10, "o-1", "same", at.Add(time.Minute))
		require.NoError(t, err)
		require.True(t, again.Duplicate)
		require.Equal(t, first.ID, again.ID)
		_, err = st.RedeemPoints(ctx, "k", 20, "o-1", "same", at)
		require.ErrorIs(t, err, store.ErrPointsKeyReused)
		require.Equal(t, map[string]int64{"a": 40}, lotsLeft(t, b.tx, "k"))
	})

	t.Run("Adjust", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		newCustomer(t, st, "adj")
		_, err := st.AdjustPoints(ctx, "adj", 15, "goodwill", "ticket-1", at)
		require.NoError(t, err)
		_, err = st.AdjustPoints(ctx, "adj", -20, "correction", "ticket-2", at)
		require.NoError(t, err)
		_, err = st.AdjustPoints(ctx, "adj", 5, "", "ticket-3", at)
		require.ErrorContains(t, err, "reason")
		p, err := st.PointsSummary(ctx, "adj", at)
		require.NoError(t, err)
		require.EqualValues(t, -5, p.Balance)
		ledgerHolds(t, b.tx, "adj")
	})

	t.Run("UnknownCustomer", func(t *testing.T) {
		t.Parallel()
		st, _ := setup(t, db)
		_, err := st.RedeemPoints(ctx, "nobody", 1, "", "k", at)
		require.ErrorIs(t, err, store.ErrCustomerNotFound)
	})
}

// TestPointsConcurrentRedeem runs redemptions in real concurrent
// transactions: ten with one key spend once, ten with different keys never
// overspend one balance.
func TestPointsConcurrentRedeem(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	st := store.New(db.Pool)
	for _, id := range []string{"same", "many"} {
		_, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: id, Type: "signed_up", OccurredAt: at, ReceivedAt: at}, "reach", "v1")
		require.NoError(t, err)
		_, err = st.GrantPoints(ctx, []store.PointsGrantReq{
			{CustomerID: id, Amount: 60, Reason: "a", GrantedAt: at, Key: "a", ExpiresAt: at.Add(time.Hour)},
			{CustomerID: id, Amount: 40, Reason: "b", GrantedAt: at, Key: "b"},
		})
		require.NoError(t, err)
	}
	redeem := func(customer, key string, points int64) (store.PointsOp, error) {
		var op store.PointsOp
		err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			var err error
			op, err = st.WithTx(tx).RedeemPoints(ctx, customer, points, "", key, at)
			return err
		})
		return op, err
	}
	var (
		wg                  sync.WaitGroup
		mu                  sync.Mutex
		sameOK, sameDup     int
		manyOK, manyRefused int
	)
	for i := range 10 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			op, err := redeem("same", "checkout-1", 30)
			mu.Lock()
			defer mu.Unlock()
			require.NoError(t, err)
			if op.Duplicate {
				sameDup++
			} else {
				sameOK++
			}
		}()
		go func() {
			defer wg.Done()
			_, err := redeem("many", fmt.Sprintf("checkout-%d", i), 30)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				require.ErrorIs(t, err, store.ErrInsufficientPoints)
				manyRefused++
			} else {
				manyOK++
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1, sameOK)
	require.Equal(t, 9, sameDup)
	require.Equal(t, 3, manyOK, "100 points cover three redemptions of 30")
	require.Equal(t, 7, manyRefused)
	for customer, want := range map[string]int64{"same": 70, "many": 10} {
		var balance, left int64
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT sum(amount) FROM points_entries WHERE customer_id = $1", customer).Scan(&balance))
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT sum(remaining) FROM points_lots WHERE customer_id = $1", customer).Scan(&left))
		require.Equal(t, want, balance, customer)
		require.Equal(t, want, left, customer)
	}
}

// TestPointsExpiryBesideSpend checks the expiry sweep against a spend in
// flight: the lot the spend holds is skipped (it expires in the next run,
// with what the spend left), the others expire at once, the sweep waits
// for the spend rather than deadlocking, and the ledger holds. It also
// checks that the parts of a sweep take each lot once between them.
func TestPointsExpiryBesideSpend(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	st := store.New(db.Pool)
	var grants []store.PointsGrantReq
	for i := range 8 {
		id := fmt.Sprintf("p%d", i)
		_, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: id, Type: "signed_up", OccurredAt: at, ReceivedAt: at}, "reach", "v1")
		require.NoError(t, err)
		grants = append(grants,
			store.PointsGrantReq{CustomerID: id, Amount: 60, Reason: "a", GrantedAt: at, Key: "a", ExpiresAt: at.Add(time.Hour)},
			store.PointsGrantReq{CustomerID: id, Amount: 40, Reason: "b", GrantedAt: at, Key: "b", ExpiresAt: at.Add(2 * time.Hour)})
	}
	_, err := st.GrantPoints(ctx, grants)
	require.NoError(t, err)

	// p0 spends 10 from lot a (it expires first) and holds it meanwhile.
	spend, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = spend.Rollback(ctx) }()
	_, err = st.WithTx(spend).RedeemPoints(ctx, "p0", 10, "", "r", at)
	require.NoError(t, err)
	var spendXID string
	require.NoError(t, spend.QueryRow(ctx, "SELECT transactionid::text FROM pg_locks WHERE locktype = 'transactionid' AND pid = pg_backend_pid() AND granted").Scan(&spendXID))

	sweep := func(parts int) map[string]int64 {
		t.Helper()
		lost := map[string]int64{}
		for part := range parts {
			b, err := st.ExpirePoints(ctx, at.Add(3*time.Hour), 1000, store.ExpireCursor{Part: part, Parts: parts})
			require.NoError(t, err)
			for _, e := range b.Customers {
				_, seen := lost[e.CustomerID]
				require.False(t, seen, "customer %s in two parts", e.CustomerID)
				lost[e.CustomerID] = e.Points
			}
		}
		return lost
	}
	done := make(chan map[string]int64, 1)
	go func() { done <- sweep(2) }()
	// The sweep's expiry entry of p0's lot b waits for the spend's lock on
	// the customer (its foreign-key check); let the spend commit then.
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted AND transactionid::text = $1", spendXID).Scan(&n))
		return n > 0
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, spend.Commit(ctx))
	var lost map[string]int64
	select {
	case lost = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the sweep did not finish after the spend committed")
	}
	require.Len(t, lost, 8)
	require.EqualValues(t, 40, lost["p0"], "p0's lot a was held by the spend and skipped")
	for i := 1; i < 8; i++ {
		require.EqualValues(t, 100, lost[fmt.Sprintf("p%d", i)])
	}
	require.Equal(t, map[string]int64{"p0": 50}, sweep(1), "the next run expires what the spend left of lot a")
	require.Empty(t, sweep(2), "each lot expires once")

	var bad int
	require.NoError(t, db.Pool.QueryRow(ctx, `
		SELECT count(*) FROM points_lots l
		WHERE remaining <> 0 OR expired_at IS NULL
		   OR remaining <> (SELECT sum(amount) FROM points_entries e WHERE e.customer_id = l.customer_id AND e.lot_id = l.id)`).Scan(&bad))
	require.Zero(t, bad, "every lot expired, its remainder the sum of its entries")
	var balance int64
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT sum(amount) FROM points_entries").Scan(&balance))
	require.Zero(t, balance)
}
