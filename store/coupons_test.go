package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
)

func TestCoupons(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

	withCustomer := func(t *testing.T, id string) *store.Store {
		t.Helper()
		st, _ := setup(t, db)
		_, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: id, Type: "signed_up", OccurredAt: at, ReceivedAt: at}, "reach", "v1")
		require.NoError(t, err)
		return st
	}
	coupon := func(customer, code string) *store.Coupon {
		return &store.Coupon{Code: code, CustomerID: customer, Rule: "r", FiringID: 1, Kind: "percent", Value: 10, CreatedAt: at}
	}

	t.Run("CodesAreUniqueWhateverTheCase", func(t *testing.T) {
		t.Parallel()
		st := withCustomer(t, "a")
		c := coupon("a", "abcde-fghjk")
		require.NoError(t, st.InsertCoupon(ctx, c))
		require.Equal(t, "ABCDE-FGHJK", c.Code, "stored in upper case")
		require.ErrorIs(t, st.InsertCoupon(ctx, coupon("a", "ABCDE-FGHJK")), store.ErrCouponCodeTaken)
		require.ErrorIs(t, st.InsertCoupon(ctx, coupon("a", "Abcde-Fghjk")), store.ErrCouponCodeTaken)
	})

	t.Run("SchemaRefusesLowerCaseCodes", func(t *testing.T) {
		t.Parallel()
		_, b := setup(t, db)
		_, err := b.tx.Exec(ctx, `INSERT INTO customers (id) VALUES ('b')`)
		require.NoError(t, err)
		_, err = b.tx.Exec(ctx, `INSERT INTO coupons (code, customer_id, rule, firing_id, kind) VALUES ('abc', 'b', 'r', 1, 'percent')`)
		require.ErrorContains(t, err, "coupons_code_upper")
	})

	t.Run("RedeemOnceWhateverTheCase", func(t *testing.T) {
		t.Parallel()
		st := withCustomer(t, "c")
		require.NoError(t, st.InsertCoupon(ctx, coupon("c", "KQ4MX-H2PA7")))
		require.ErrorIs(t, st.RedeemCoupon(ctx, "c", "NOPE", at), store.ErrCouponNotFound)
		require.ErrorIs(t, st.RedeemCoupon(ctx, "other", "KQ4MX-H2PA7", at), store.ErrCouponNotFound)
		require.NoError(t, st.RedeemCoupon(ctx, "c", " kq4mx-h2pa7\t", at))

		err := st.RedeemCoupon(ctx, "c", "KQ4MX-H2PA7", at.Add(time.Hour))
		require.ErrorIs(t, err, store.ErrCouponRedeemed)
		var re *store.CouponRedeemedError
		require.ErrorAs(t, err, &re)
		require.Equal(t, "KQ4MX-H2PA7", re.Code)
		require.True(t, re.RedeemedAt.Equal(at), re.RedeemedAt)
		require.Contains(t, err.Error(), "already redeemed at 2026-11-01T12:00:00Z")

		got, err := st.CouponsByFiring(ctx, "c", 1)
		require.NoError(t, err)
		require.True(t, got[0].RedeemedAt.Equal(at), "the first redemption is kept")
	})

	t.Run("IdempotencyKeyWithOtherPayload", func(t *testing.T) {
		t.Parallel()
		st, _ := setup(t, db)
		ev := func(key string, hash byte) *store.NewEvent {
			return &store.NewEvent{CustomerID: "d", Type: "signed_up", IdempotencyKey: key, OccurredAt: at, ReceivedAt: at,
				PayloadHash: []byte{hash}}
		}
		first, err := st.IngestEvent(ctx, ev("k", 1), "reach", "v1")
		require.NoError(t, err)
		again, err := st.IngestEvent(ctx, ev("k", 1), "reach", "v1")
		require.NoError(t, err)
		require.True(t, again.Duplicate)
		require.Equal(t, first.EventID, again.EventID)

		_, err = st.IngestEvents(ctx, []*store.NewEvent{ev("k2", 1), ev("k", 2)}, "reach", "v1")
		require.ErrorIs(t, err, store.ErrIdempotencyConflict)
		var ce *store.IdempotencyConflictError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, store.IdempotencyConflictError{CustomerID: "d", Key: "k", EventID: first.EventID, Index: 1, FirstIndex: -1}, *ce)

		_, err = st.IngestEvents(ctx, []*store.NewEvent{ev("k3", 1), ev("k4", 1), ev("k3", 2)}, "reach", "v1")
		require.ErrorAs(t, err, &ce)
		require.Equal(t, 2, ce.Index)
		require.Equal(t, 0, ce.FirstIndex, "the key's first event is in the same call")

		// No hash on either side (events stored before hashes were kept): a duplicate, as before.
		noHash := ev("k", 3)
		noHash.PayloadHash = nil
		dup, err := st.IngestEvent(ctx, noHash, "reach", "v1")
		require.NoError(t, err)
		require.True(t, dup.Duplicate)
	})
}
