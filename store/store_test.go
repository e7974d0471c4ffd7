package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
)

type testBundle struct {
	db *testdb.DB
	tx pgx.Tx
}

// setup gives each subtest a transaction rolled back at its end.
func setup(t *testing.T, db *testdb.DB) (*store.Store, *testBundle) {
	t.Helper()
	tx, err := db.Pool.Begin(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return store.New(db.Pool).WithTx(tx), &testBundle{db: db, tx: tx}
}

func count(t *testing.T, tx pgx.Tx, q string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, tx.QueryRow(context.Background(), q, args...).Scan(&n))
	return n
}

func TestStore(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

	order := func(customer, key string, total float64, when time.Time) *store.NewEvent {
		return &store.NewEvent{CustomerID: customer, Type: "order_placed", IdempotencyKey: key, OccurredAt: when,
			ReceivedAt: when, IsOrder: true, OrderTotal: total, Email: customer + "@example.com"}
	}

	t.Run("IngestFoldsFactsAndSnapshots", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		res, err := st.IngestEvent(ctx, order("a", "k1", 10.10, at), "reach", "v1")
		require.NoError(t, err)
		require.True(t, res.NewCustomer)
		res2, err := st.IngestEvent(ctx, order("a", "k2", 5, at.Add(time.Hour)), "reach", "v1")
		require.NoError(t, err)
		require.False(t, res2.NewCustomer)

		c, err := st.GetCustomer(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, 2, c.OrdersCount)
		require.InDelta(t, 15.10, c.TotalSpent, 0.001)
		require.True(t, c.FirstOrderAt.Equal(at))
		require.True(t, c.LastOrderAt.Equal(at.Add(time.Hour)))
		require.Equal(t, "reach", c.Stage)
		// One transition for the creation, none for the second event.
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM stage_transitions WHERE customer_id = 'a' AND from_stage IS NULL AND to_stage = 'reach'"))

		_, pending, err := st.ClaimForEvaluation(ctx, "a", res.EventID, at, false)
		require.NoError(t, err)
		require.Len(t, pending, 1)
		require.Equal(t, 1, pending[0].Facts.OrdersCount, "first event sees the first order only")
		_, pending, err = st.ClaimForEvaluation(ctx, "a", res2.EventID, at, false)
		require.NoError(t, err)
		require.Len(t, pending, 1)
		require.Equal(t, 2, pending[0].Facts.OrdersCount)
	})

	t.Run("DuplicateKeyChangesNothing", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		first, err := st.IngestEvent(ctx, order("b", "same", 10, at), "reach", "v1")
		require.NoError(t, err)
		again, err := st.IngestEvent(ctx, order("b", "same", 99, at), "reach", "v1")
		require.NoError(t, err)
		require.True(t, again.Duplicate)
		require.Equal(t, first.EventID, again.EventID)
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM events WHERE customer_id = 'b'"))
		c, err := st.GetCustomer(ctx, "b")
		require.NoError(t, err)
		require.Equal(t, 1, c.OrdersCount)
		require.InDelta(t, 10, c.TotalSpent, 0.001)
	})

	// fire1 writes one firing with Store.Fire and says whether it was written.
	fire1 := func(t *testing.T, st *store.Store, f *store.Fire, codes ...string) bool {
		t.Helper()
		newCode := func() string { c := codes[0]; codes = codes[1:]; return c }
		require.NoError(t, st.Fire(ctx, []*store.Fire{f}, newCode, 3))
		return f.Fired
	}

	t.Run("FiringGuardAndStageMoves", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		_, err := st.IngestEvent(ctx, order("c", "", 1, at), "reach", "v1")
		require.NoError(t, err)
		f := &store.Fire{Firing: store.Firing{CustomerID: "c", Rule: "r", Occurrence: "event:1", RuleSetVersion: "v1", FiredAt: at}}
		ok := fire1(t, st, f)
		require.True(t, ok)
		require.NotZero(t, f.Firing.ID)
		ok = fire1(t, st, &store.Fire{Firing: store.Firing{CustomerID: "c", Rule: "r", Occurrence: "event:1", RuleSetVersion: "v2", FiredAt: at}})
		require.False(t, ok, "second firing for the same occurrence")

		// A cooldown looks back across window boundaries: another
		// occurrence two seconds later is refused, one past the cooldown is not.
		day := 24 * time.Hour
		cd := &store.Fire{Firing: store.Firing{CustomerID: "c", Rule: "cd", Occurrence: "window:1", RuleSetVersion: "v1", FiredAt: at, Cooldown: 30 * day}}
		ok = fire1(t, st, cd)
		require.True(t, ok)
		ok = fire1(t, st, &store.Fire{Firing: store.Firing{CustomerID: "c", Rule: "cd", Occurrence: "window:2", RuleSetVersion: "v1", FiredAt: at.Add(2 * time.Second), Cooldown: 30 * day}})
		require.False(t, ok, "within the cooldown")
		ok = fire1(t, st, &store.Fire{Firing: store.Firing{CustomerID: "c", Rule: "cd", Occurrence: "window:3", RuleSetVersion: "v1", FiredAt: at.Add(31 * day), Cooldown: 30 * day}})
		require.True(t, ok, "past the cooldown")

		mv := &store.Fire{Firing: store.Firing{CustomerID: "c", Rule: "r", Occurrence: "event:2", RuleSetVersion: "v1", FiredAt: at}, Stages: []string{"conversion"}}
		require.True(t, fire1(t, st, mv))
		require.Len(t, mv.Transitions, 1)
		require.Equal(t, "reach", mv.Transitions[0].From)
		mv = &store.Fire{Firing: store.Firing{CustomerID: "c", Rule: "r", Occurrence: "event:3", FiredAt: at}, Stages: []string{"conversion"}}
		require.True(t, fire1(t, st, mv))
		require.Empty(t, mv.Transitions, "already in the stage")
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM stage_transitions WHERE customer_id = 'c' AND to_stage = 'conversion'"))
	})

	t.Run("FireWritesAllAtOnce", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		_, err := st.IngestEvent(ctx, order("fa", "", 1, at), "reach", "v1")
		require.NoError(t, err)
		taken := &store.Coupon{Code: "TAKEN-FA", CustomerID: "fa", Rule: "other", FiringID: 99, Kind: "percent", Value: 5, CreatedAt: at}
		require.NoError(t, st.InsertCoupon(ctx, taken))

		expires := at.Add(14 * 24 * time.Hour)
		newFire := func(occurrence string) *store.Fire {
			return &store.Fire{
				Firing: store.Firing{CustomerID: "fa", Rule: "r", Occurrence: occurrence, RuleSetVersion: "v1", EventID: 7, FiredAt: at},
				Stages: []string{"conversion"},
				Coupons: []*store.Coupon{
					{Code: "FRESH-FA", Kind: "percent", Value: 10, ExpiresAt: expires},
					{Code: "TAKEN-FA", Kind: "free_shipping"},
				},
				Deliveries: []*store.Delivery{
					{Channel: "email", Action: []byte(`{"template":"a"}`)},
					{Channel: "webhook", Action: []byte(`{"url":"http://x"}`)},
				},
			}
		}
		f := newFire("event:7")
		require.True(t, fire1(t, st, f, "REDRAWN-FA"))
		require.NotZero(t, f.Firing.ID)
		require.Len(t, f.Transitions, 1)
		require.Equal(t, "reach", f.Transitions[0].From)
		require.Equal(t, "conversion", f.Transitions[0].To)
		require.NotZero(t, f.Coupons[0].ID)
		require.Equal(t, "REDRAWN-FA", f.Coupons[1].Code, "a taken code is drawn again, not an error")
		require.NotZero(t, f.Coupons[1].ID)
		require.Equal(t, f.Firing.ID, f.Coupons[1].FiringID)
		require.Less(t, f.Deliveries[0].ID, f.Deliveries[1].ID)

		c, err := st.GetCustomer(ctx, "fa")
		require.NoError(t, err)
		require.Equal(t, "conversion", c.Stage)
		require.True(t, c.StageEnteredAt.Equal(at))
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM customers WHERE id = 'fa' AND coupon_expires_at = $1", expires))
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM stage_transitions WHERE customer_id = 'fa' AND from_stage = 'reach' AND to_stage = 'conversion' AND rule = 'r' AND firing_id = $1", f.Firing.ID))
		require.Equal(t, 2, count(t, b.tx, "SELECT count(*) FROM coupons WHERE customer_id = 'fa' AND firing_id = $1", f.Firing.ID))
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM deliveries WHERE id = $1 AND firing_id = $2 AND channel = 'email' AND status = 'queued' AND action->>'template' = 'a'", f.Deliveries[0].ID, f.Firing.ID))
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM deliveries WHERE id = $1 AND channel = 'webhook'", f.Deliveries[1].ID))

		// The same occurrence again writes nothing.
		require.False(t, fire1(t, st, newFire("event:7")))
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM rule_firings WHERE customer_id = 'fa'"))
		require.Equal(t, 2, count(t, b.tx, "SELECT count(*) FROM deliveries WHERE customer_id = 'fa'"))

		// Another occurrence into the stage the customer is in: no transition.
		again := newFire("event:8")
		again.Coupons, again.Deliveries = nil, nil
		require.True(t, fire1(t, st, again))
		require.Empty(t, again.Transitions)
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM stage_transitions WHERE customer_id = 'fa' AND to_stage = 'conversion'"))

		// No stage: a coupon without expiry leaves coupon_expires_at alone.
		plain := newFire("event:9")
		plain.Stages = nil
		plain.Coupons = []*store.Coupon{{Code: "PLAIN-FA", Kind: "percent", Value: 1}}
		require.True(t, fire1(t, st, plain))
		require.Empty(t, plain.Transitions)
		require.NotZero(t, plain.Coupons[0].ID)
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM customers WHERE id = 'fa' AND coupon_expires_at = $1 AND stage = 'conversion'", expires))
		// A cooldown refuses another occurrence within it, whatever its key.
		cooled := newFire("window:1")
		cooled.Firing.Rule, cooled.Firing.Cooldown = "cd", 30*24*time.Hour
		cooled.Coupons, cooled.Deliveries = nil, nil
		require.True(t, fire1(t, st, cooled))
		soon := newFire("window:2")
		soon.Firing.Rule, soon.Firing.Cooldown, soon.Firing.FiredAt = "cd", 30*24*time.Hour, at.Add(2*time.Second)
		soon.Coupons, soon.Deliveries = nil, nil
		require.False(t, fire1(t, st, soon), "within the cooldown")
	})

	t.Run("SeveralStagesAndCustomersInOneCall", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		for _, id := range []string{"m1", "m2"} {
			_, err := st.IngestEvent(ctx, order(id, "", 1, at), "reach", "v1")
			require.NoError(t, err)
		}
		// m1: two rules, three stage moves in action order (one a no-op);
		// m2: one rule, already in its stage. A rule fired already is left out.
		done := &store.Fire{Firing: store.Firing{CustomerID: "m2", Rule: "old", Occurrence: "o", FiredAt: at}}
		require.True(t, fire1(t, st, done))
		fs := []*store.Fire{
			{Firing: store.Firing{CustomerID: "m1", Rule: "a", Occurrence: "o", RuleSetVersion: "v3", FiredAt: at.Add(time.Hour)},
				Stages: []string{"conversion", "conversion", "retention"}, Deliveries: []*store.Delivery{{Channel: "email", Action: []byte(`{"n":1}`)}}},
			{Firing: store.Firing{CustomerID: "m2", Rule: "old", Occurrence: "o", FiredAt: at.Add(time.Hour)},
				Stages: []string{"churned"}, Deliveries: []*store.Delivery{{Channel: "email", Action: []byte(`{"n":2}`)}}},
			{Firing: store.Firing{CustomerID: "m2", Rule: "b", Occurrence: "o", RuleSetVersion: "v3", FiredAt: at.Add(time.Hour)},
				Stages: []string{"reach"}, Deliveries: []*store.Delivery{{Channel: "webhook", Action: []byte(`{"n":3}`)}}},
			{Firing: store.Firing{CustomerID: "m1", Rule: "c", Occurrence: "o", RuleSetVersion: "v3", FiredAt: at.Add(time.Hour)},
				Stages: []string{"loyalty"}, Deliveries: []*store.Delivery{{Channel: "email", Action: []byte(`{"n":4}`)}}},
		}
		require.NoError(t, st.Fire(ctx, fs, func() string { return "X" }, 1))
		require.Equal(t, []bool{true, false, true, true}, []bool{fs[0].Fired, fs[1].Fired, fs[2].Fired, fs[3].Fired})
		require.Len(t, fs[0].Transitions, 2)
		require.Equal(t, [2]string{"reach", "conversion"}, [2]string{fs[0].Transitions[0].From, fs[0].Transitions[0].To})
		require.Equal(t, [2]string{"conversion", "retention"}, [2]string{fs[0].Transitions[1].From, fs[0].Transitions[1].To})
		require.Empty(t, fs[2].Transitions)
		require.Len(t, fs[3].Transitions, 1)
		require.Equal(t, "retention", fs[3].Transitions[0].From)
		require.Equal(t, 3, count(t, b.tx, "SELECT count(*) FROM stage_transitions WHERE customer_id = 'm1' AND rule_set_version = 'v3'"))
		require.Equal(t, 1, count(t, b.tx, `SELECT count(*) FROM (SELECT array_agg(from_stage || '>' || to_stage ORDER BY id) AS a
			FROM stage_transitions WHERE customer_id = 'm1' AND from_stage IS NOT NULL) t
			WHERE a = '{reach>conversion,conversion>retention,retention>loyalty}'`), "logged in action order")
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM customers WHERE id = 'm1' AND stage = 'loyalty' AND stage_entered_at = $1", at.Add(time.Hour)))
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM customers WHERE id = 'm2' AND stage = 'reach' AND stage_entered_at = $1", at))
		for _, k := range []int{0, 2, 3} {
			d := fs[k].Deliveries[0]
			require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM deliveries WHERE customer_id = $1 AND id = $2 AND firing_id = $3 AND channel = $4 AND action = $5::jsonb",
				d.CustomerID, d.ID, fs[k].Firing.ID, d.Channel, string(d.Action)))
		}
		require.Zero(t, fs[1].Deliveries[0].ID)
		require.Equal(t, 3, count(t, b.tx, "SELECT count(*) FROM deliveries WHERE customer_id IN ('m1', 'm2')"))

		err := st.Fire(ctx, []*store.Fire{fs[0], fs[0]}, nil, 1)
		require.ErrorContains(t, err, "fires twice")
	})

	t.Run("ClaimForEvaluation", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		first, err := st.IngestEvent(ctx, order("ce", "k1", 1, at), "reach", "v1")
		require.NoError(t, err)
		second, err := st.IngestEvent(ctx, order("ce", "k2", 1, at.Add(time.Hour)), "reach", "v1")
		require.NoError(t, err)
		third, err := st.IngestEvent(ctx, order("ce", "k3", 1, at.Add(2*time.Hour)), "reach", "v1")
		require.NoError(t, err)

		stage, pending, err := st.ClaimForEvaluation(ctx, "ce", second.EventID, at, true)
		require.NoError(t, err)
		require.Equal(t, "reach", stage)
		require.Len(t, pending, 2)
		require.Equal(t, first.EventID, pending[0].ID)
		require.Equal(t, second.EventID, pending[1].ID)
		require.Equal(t, 1, pending[0].Facts.OrdersCount)
		require.Equal(t, 2, pending[1].Facts.OrdersCount)
		require.Equal(t, "ce", pending[1].CustomerID)
		require.Equal(t, 2, count(t, b.tx, "SELECT count(*) FROM events WHERE customer_id = 'ce' AND evaluated_at = $1", at))
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) WHERE current_setting('synchronous_commit') = 'off'"))

		// Claimed events are not claimed again; later ones still are.
		_, pending, err = st.ClaimForEvaluation(ctx, "ce", third.EventID, at, false)
		require.NoError(t, err)
		require.Len(t, pending, 1)
		require.Equal(t, third.EventID, pending[0].ID)

		_, _, err = st.ClaimForEvaluation(ctx, "nobody", 1, at, false)
		require.ErrorIs(t, err, store.ErrCustomerNotFound)
	})

	t.Run("CouponCodeCollision", func(t *testing.T) {
		t.Parallel()
		st, _ := setup(t, db)
		_, err := st.IngestEvent(ctx, order("d", "", 1, at), "reach", "v1")
		require.NoError(t, err)
		c := &store.Coupon{Code: "SAME-CODE", CustomerID: "d", Rule: "r", FiringID: 1, Kind: "percent", Value: 10, CreatedAt: at, ExpiresAt: at.Add(24 * time.Hour)}
		require.NoError(t, st.InsertCoupon(ctx, c))
		dup := *c
		require.ErrorIs(t, st.InsertCoupon(ctx, &dup), store.ErrCouponCodeTaken)
		// The transaction is still usable after a collision.
		got, err := st.CouponsByFiring(ctx, "d", 1)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.True(t, got[0].ExpiresAt.Equal(at.Add(24*time.Hour)))
	})

	t.Run("EnsureSettingKeepsTheFirstValue", func(t *testing.T) {
		t.Parallel()
		st, _ := setup(t, db)
		v, err := st.EnsureSetting(ctx, "s", "first")
		require.NoError(t, err)
		require.Equal(t, "first", v)
		v, err = st.EnsureSetting(ctx, "s", "second")
		require.NoError(t, err)
		require.Equal(t, "first", v)
	})

	t.Run("SweepEffectsRedrawTakenCodes", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		for _, id := range []string{"s1", "s2"} {
			_, err := st.IngestEvent(ctx, order(id, "", 1, at), "retention", "v1")
			require.NoError(t, err)
		}
		require.NoError(t, st.InsertCoupon(ctx, &store.Coupon{Code: "TAKEN", CustomerID: "s1", Rule: "old", FiringID: 1,
			Kind: "percent", Value: 5, CreatedAt: at}))
		// The first draws collide with a stored code and with each other.
		draws := []string{"TAKEN", "TAKEN", "NEW-1", "TAKEN", "NEW-2"}
		newCode := func() string { c := draws[0]; draws = draws[1:]; return c }
		exp := at.Add(30 * 24 * time.Hour)
		fs := []*store.Fire{
			{Firing: store.Firing{CustomerID: "s1", Rule: "r", Occurrence: "o", RuleSetVersion: "v2", FiredAt: at},
				Stages:     []string{"at_risk"},
				Coupons:    []*store.Coupon{{Kind: "percent", Value: 20, ExpiresAt: exp}},
				Deliveries: []*store.Delivery{{Channel: "email", Action: []byte(`{}`)}}},
			{Firing: store.Firing{CustomerID: "s1", Rule: "r2", Occurrence: "o", RuleSetVersion: "v2", FiredAt: at},
				Stages: []string{"churned"}},
			{Firing: store.Firing{CustomerID: "s2", Rule: "r", Occurrence: "o", RuleSetVersion: "v2", FiredAt: at},
				Coupons:    []*store.Coupon{{Kind: "percent", Value: 20, ExpiresAt: exp.Add(time.Hour)}},
				Deliveries: []*store.Delivery{{Channel: "email", Action: []byte(`{}`)}}},
		}
		require.NoError(t, st.Fire(ctx, fs, newCode, 3))
		require.Empty(t, draws)
		for _, c := range []*store.Coupon{fs[0].Coupons[0], fs[2].Coupons[0]} {
			require.NotZero(t, c.ID)
			require.Contains(t, []string{"NEW-1", "NEW-2"}, c.Code)
		}
		for _, d := range []*store.Delivery{fs[0].Deliveries[0], fs[2].Deliveries[0]} {
			require.NotZero(t, d.ID)
		}
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM customers WHERE id = 's1' AND stage = 'churned' AND coupon_expires_at = $1", exp))
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM customers WHERE id = 's2' AND stage = 'retention' AND coupon_expires_at = $1", exp.Add(time.Hour)))
		require.Equal(t, 2, count(t, b.tx, "SELECT count(*) FROM stage_transitions WHERE customer_id = 's1' AND rule_set_version = 'v2'"))

		// Out of draws: an error, not a coupon short.
		out := []*store.Fire{{Firing: store.Firing{CustomerID: "s2", Rule: "r3", Occurrence: "o", RuleSetVersion: "v2", FiredAt: at},
			Coupons: []*store.Coupon{{Kind: "percent", Value: 20}}}}
		require.Error(t, st.Fire(ctx, out, func() string { return "TAKEN" }, 2))
	})

	t.Run("FinishDeliveriesStoresOddRepliesAndBounces", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		for _, id := range []string{"o1", "o2"} {
			_, err := st.IngestEvent(ctx, order(id, "", 1, at), "retention", "v1")
			require.NoError(t, err)
		}
		fs := []*store.Fire{
			{Firing: store.Firing{CustomerID: "o1", Rule: "r", Occurrence: "o", RuleSetVersion: "v1", FiredAt: at},
				Deliveries: []*store.Delivery{{Channel: "webhook", Action: []byte(`{}`)}}},
			{Firing: store.Firing{CustomerID: "o2", Rule: "r", Occurrence: "o", RuleSetVersion: "v1", FiredAt: at},
				Deliveries: []*store.Delivery{{Channel: "email", Action: []byte(`{}`)}}},
		}
		require.NoError(t, st.Fire(ctx, fs, func() string { return "X" }, 1))
		eff := struct{ Deliveries []*store.Delivery }{[]*store.Delivery{fs[0].Deliveries[0], fs[1].Deliveries[0]}}
		outs := []store.Outcome{
			// A receiver's reply with a NUL byte and invalid UTF-8 must not fail the batch.
			{Delivery: store.DeliveryRef{CustomerID: "o1", ID: eff.Deliveries[0].ID},
				Status: store.DeliverySent, Attempted: true, ResponseCode: 200, Response: "ok\x00\xff", At: at},
			{Delivery: store.DeliveryRef{CustomerID: "o2", ID: eff.Deliveries[1].ID},
				Status: store.DeliveryFailed, Attempted: true, ResponseCode: 550, Error: "550 no such user", At: at, Bounce: "o2@example.com"},
		}
		require.NoError(t, st.FinishDeliveries(ctx, outs))
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM deliveries WHERE customer_id = 'o1' AND status = 'sent' AND attempts = 1 AND response = 'ok\uFFFD' AND response_code = 200"))
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM deliveries WHERE customer_id = 'o2' AND status = 'failed' AND last_error = '550 no such user'"))
		reason, err := st.Suppressed(ctx, "o2@example.com")
		require.NoError(t, err)
		require.Equal(t, store.SuppressBounced, reason, "the bounce is recorded with the outcome")
		require.NoError(t, st.FinishDeliveries(ctx, nil))
	})

	t.Run("ClaimUnderCapDecidesInOrder", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		for _, id := range []string{"k1", "k2"} {
			_, err := st.IngestEvent(ctx, order(id, "", 1, at), "retention", "v1")
			require.NoError(t, err)
		}
		email := func(n int, action string) []*store.Delivery {
			out := make([]*store.Delivery, n)
			for i := range out {
				out[i] = &store.Delivery{Channel: "email", Action: []byte(action)}
			}
			return out
		}
		fs := []*store.Fire{
			{Firing: store.Firing{CustomerID: "k1", Rule: "r", Occurrence: "o", RuleSetVersion: "v1", FiredAt: at},
				Deliveries: email(6, `{}`)},
			{Firing: store.Firing{CustomerID: "k2", Rule: "r", Occurrence: "o", RuleSetVersion: "v1", FiredAt: at},
				Deliveries: append(email(1, `{"transactional": true}`), email(2, `{}`)...)},
		}
		require.NoError(t, st.Fire(ctx, fs, func() string { return "X" }, 1))
		k1, k2 := fs[0].Deliveries, fs[1].Deliveries
		set := func(d *store.Delivery, sql string, args ...any) {
			_, err := b.tx.Exec(ctx, "UPDATE deliveries SET "+sql+" WHERE customer_id = $1 AND id = $2", append([]any{d.CustomerID, d.ID}, args...)...)
			require.NoError(t, err)
		}
		// k1: one marketing email sent in the window, one sent before it,
		// one in flight, one whose claim is stale: 2 count.
		set(k1[0], "status = 'sent', sent_at = $3", at.Add(-24*time.Hour))
		set(k1[1], "status = 'sent', sent_at = $3", at.Add(-30*24*time.Hour))
		set(k1[2], "claimed_at = $3", at.Add(-time.Minute))
		set(k1[3], "claimed_at = $3", at.Add(-time.Hour))
		// k2: a transactional email sent, which never counts.
		set(k2[0], "status = 'sent', sent_at = $3", at.Add(-time.Hour))

		claim := func(d *store.Delivery, max int) store.Cap {
			return store.Cap{Delivery: store.DeliveryRef{CustomerID: d.CustomerID, ID: d.ID}, Max: max,
				Since: at.Add(-7 * 24 * time.Hour), StaleBefore: at.Add(-20 * time.Minute), Now: at}
		}
		// k1's second and k2's second delivery are each decided after the
		// claim of the first, in the same call.
		got, err := st.ClaimUnderCap(ctx, []store.Cap{claim(k1[4], 3), claim(k2[1], 1), claim(k1[5], 3), claim(k2[2], 1)})
		require.NoError(t, err)
		require.Equal(t, []store.CapClaim{{Counted: 2, Claimed: true}, {Counted: 0, Claimed: true},
			{Counted: 3, Claimed: false}, {Counted: 1, Claimed: false}}, got)
		require.Equal(t, 1, count(t, b.tx, "SELECT count(*) FROM deliveries WHERE customer_id = 'k1' AND id = $1 AND claimed_at = $2", k1[4].ID, at))
		require.Equal(t, 0, count(t, b.tx, "SELECT count(*) FROM deliveries WHERE customer_id = 'k1' AND id = $1 AND claimed_at IS NOT NULL", k1[5].ID))

		// A claimed delivery tried again (its job retried) does not count itself.
		got, err = st.ClaimUnderCap(ctx, []store.Cap{claim(k1[4], 3)})
		require.NoError(t, err)
		require.Equal(t, []store.CapClaim{{Counted: 2, Claimed: true}}, got)
	})

	t.Run("NotFoundSentinels", func(t *testing.T) {
		t.Parallel()
		st, _ := setup(t, db)
		_, err := st.GetCustomer(ctx, "nobody")
		require.ErrorIs(t, err, store.ErrCustomerNotFound)
		_, err = st.GetEvent(ctx, "nobody", 1)
		require.ErrorIs(t, err, store.ErrEventNotFound)
		_, err = st.GetDelivery(ctx, "nobody", 1)
		require.ErrorIs(t, err, store.ErrDeliveryNotFound)
	})

	t.Run("SuppressionsAndUnsubscribe", func(t *testing.T) {
		t.Parallel()
		st, _ := setup(t, db)
		_, err := st.IngestEvent(ctx, order("e", "", 1, at), "reach", "v1")
		require.NoError(t, err)
		reason, err := st.Suppressed(ctx, "E@example.com")
		require.NoError(t, err)
		require.Empty(t, reason)
		require.NoError(t, st.Unsubscribe(ctx, "e", "E@Example.com", at))
		reason, err = st.Suppressed(ctx, "e@example.com")
		require.NoError(t, err)
		require.Equal(t, store.SuppressUnsubscribed, reason)
		c, err := st.GetCustomer(ctx, "e")
		require.NoError(t, err)
		require.True(t, c.UnsubscribedAt.Equal(at))
		// The first reason is kept.
		require.NoError(t, st.AddSuppression(ctx, "e@example.com", store.SuppressBounced, "550", at))
		reason, err = st.Suppressed(ctx, "e@example.com")
		require.NoError(t, err)
		require.Equal(t, store.SuppressUnsubscribed, reason)
	})

	t.Run("UnsubscribeWinsOverBounceAndFollowsTheCustomer", func(t *testing.T) {
		t.Parallel()
		st, _ := setup(t, db)
		_, err := st.IngestEvent(ctx, order("f", "", 1, at), "reach", "v1")
		require.NoError(t, err)
		require.NoError(t, st.AddSuppression(ctx, "old-f@example.com", store.SuppressBounced, "550", at))
		// The link was made for old-f@…; the customer's address is f@… now.
		require.NoError(t, st.Unsubscribe(ctx, "f", "old-f@example.com", at))
		reason, err := st.Suppressed(ctx, "old-f@example.com")
		require.NoError(t, err)
		require.Equal(t, store.SuppressUnsubscribed, reason, "unsubscribe replaces a bounce")
		c, err := st.GetCustomer(ctx, "f")
		require.NoError(t, err)
		require.False(t, c.UnsubscribedAt.IsZero(), "the customer the link was for is unsubscribed")

		// Lifting a bounce does not re-subscribe; lifting an unsubscribe does.
		require.NoError(t, st.AddSuppression(ctx, "f@example.com", store.SuppressBounced, "550", at))
		require.NoError(t, st.RemoveSuppression(ctx, "f@example.com"))
		c, err = st.GetCustomer(ctx, "f")
		require.NoError(t, err)
		require.False(t, c.UnsubscribedAt.IsZero(), "lifting a bounce keeps the unsubscribe")
	})
}
