package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

func TestRecomputeTiers(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tiers := func(t *testing.T, yaml string) []rules.Tier {
		t.Helper()
		rs, err := rules.Parse("r.yaml", []byte("version: 1\ntiers:\n"+yaml+"rules: []\n"), rules.ParseOptions{})
		require.NoError(t, err)
		return rs.Tiers
	}
	spendTiers := tiers(t, "  - { name: silver, min_spend: 200 }\n  - { name: gold, min_spend: 1000, over: rolling_365d }\n")
	order := func(t *testing.T, st *store.Store, customer, id string, total float64, at time.Time) {
		t.Helper()
		_, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: customer, Type: "order_placed", OccurredAt: at, ReceivedAt: at,
			IsOrder: true, OrderTotal: total, Properties: map[string]any{"order_id": id, "total": total}}, "reach", "v1")
		require.NoError(t, err)
	}
	refund := func(t *testing.T, st *store.Store, customer, id string, amount float64, at time.Time) {
		t.Helper()
		_, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: customer, Type: "order_refunded", OccurredAt: at, ReceivedAt: at,
			Properties: map[string]any{"order_id": id, "amount": amount}}, "reach", "v1")
		require.NoError(t, err)
	}
	recompute := func(t *testing.T, st *store.Store, ts []rules.Tier, ids []string, now time.Time) []store.TierChange {
		t.Helper()
		page, err := st.RecomputeTiers(ctx, &store.TierRecompute{Tiers: ts, CustomerIDs: ids, Now: now, Reason: "test", RuleSetVersion: "v1"})
		require.NoError(t, err)
		return page.Changes
	}
	tierOf := func(t *testing.T, b *testBundle, id string) string {
		t.Helper()
		var tier string
		require.NoError(t, b.tx.QueryRow(ctx, "SELECT tier FROM customers WHERE id = $1", id).Scan(&tier))
		return tier
	}

	t.Run("UpgradeOnOrder", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		order(t, st, "u", "o1", 150, t0)
		require.Empty(t, recompute(t, st, spendTiers, []string{"u"}, t0), "150 is below silver")
		order(t, st, "u", "o2", 50, t0.Add(day))
		ch := recompute(t, st, spendTiers, []string{"u"}, t0.Add(day))
		require.Len(t, ch, 1)
		require.Equal(t, "", ch[0].From)
		require.Equal(t, "silver", ch[0].To)
		require.NotZero(t, ch[0].Event.ID)
		require.Equal(t, "silver", tierOf(t, b, "u"))
		require.Equal(t, 1, count(t, b.tx, `SELECT count(*) FROM tier_transitions WHERE customer_id = 'u' AND from_tier = ''
			AND to_tier = 'silver' AND reason = 'test' AND rule_set_version = 'v1' AND occurred_at = $1`, t0.Add(day)))
		require.Equal(t, 1, count(t, b.tx, `SELECT count(*) FROM events WHERE customer_id = 'u' AND type = 'tier_changed'
			AND properties->>'from' = '' AND properties->>'to' = 'silver' AND id = $1`, ch[0].Event.ID))
		require.Empty(t, recompute(t, st, spendTiers, []string{"u"}, t0.Add(day)), "unchanged: nothing logged")
		order(t, st, "u", "o3", 800, t0.Add(2*day))
		ch = recompute(t, st, spendTiers, []string{"u"}, t0.Add(2*day))
		require.Len(t, ch, 1)
		require.Equal(t, [2]string{"silver", "gold"}, [2]string{ch[0].From, ch[0].To})
		require.Equal(t, 2, count(t, b.tx, "SELECT count(*) FROM events WHERE customer_id = 'u' AND type = 'tier_changed'"))
	})

	t.Run("RefundDowngrades", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		order(t, st, "r", "o1", 1000, t0)
		recompute(t, st, spendTiers, []string{"r"}, t0)
		require.Equal(t, "gold", tierOf(t, b, "r"))
		refund(t, st, "r", "o1", 0.01, t0.Add(day))
		ch := recompute(t, st, spendTiers, []string{"r"}, t0.Add(day))
		require.Len(t, ch, 1)
		require.Equal(t, [2]string{"gold", "silver"}, [2]string{ch[0].From, ch[0].To}, "999.99 spent in the window")
	})

	t.Run("SweepDowngradesWhenTheWindowRollsPast", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		order(t, st, "w1", "o1", 1200, t0)
		order(t, st, "w2", "o1", 600, t0)
		order(t, st, "w2", "o2", 600, t0.Add(200*day))
		order(t, st, "w3", "o1", 100, t0)
		changes := recompute(t, st, spendTiers, nil, t0.Add(200*day))
		require.Len(t, changes, 2, "w3 stays without a tier")
		require.Equal(t, "gold", tierOf(t, b, "w1"))
		require.Equal(t, "gold", tierOf(t, b, "w2"))
		require.Equal(t, "", tierOf(t, b, "w3"))

		// A day past a year after the first orders: w1's spend in the
		// window is 0 (silver by its lifetime spend); w2 keeps 600.
		changes = recompute(t, st, spendTiers, nil, t0.Add(366*day))
		require.Len(t, changes, 2)
		require.Equal(t, "silver", tierOf(t, b, "w1"))
		require.Equal(t, "silver", tierOf(t, b, "w2"))
		require.Equal(t, 2, count(t, b.tx, "SELECT count(*) FROM tier_transitions WHERE from_tier = 'gold' AND to_tier = 'silver' AND occurred_at = $1", t0.Add(366*day)))
		// Exactly at the window's edge the order still counts.
		_, err := b.tx.Exec(ctx, "UPDATE customers SET tier = 'gold' WHERE id = 'w1'")
		require.NoError(t, err)
		require.Empty(t, recompute(t, st, spendTiers, []string{"w1"}, t0.Add(365*day)))
	})

	t.Run("PointsOverCalendarYear", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		ts := tiers(t, "  - { name: vip, min_points: 500, over: calendar_year }\n")
		order(t, st, "p", "o1", 10, t0)
		_, err := st.GrantPoints(ctx, []store.PointsGrantReq{
			{CustomerID: "p", Amount: 300, Reason: "t", GrantedAt: t0.AddDate(-1, 0, 0), Key: "last-year"},
			{CustomerID: "p", Amount: 400, Reason: "t", GrantedAt: t0, Key: "this-year", OrderID: "o1"},
		})
		require.NoError(t, err)
		require.Empty(t, recompute(t, st, ts, []string{"p"}, t0), "last year's points do not count")
		_, err = st.GrantPoints(ctx, []store.PointsGrantReq{{CustomerID: "p", Amount: 100, Reason: "t", GrantedAt: t0, Key: "more"}})
		require.NoError(t, err)
		require.Len(t, recompute(t, st, ts, []string{"p"}, t0), 1)
		require.Equal(t, "vip", tierOf(t, b, "p"))
		_, err = st.ReverseOrderPoints(ctx, "p", "o1", "refund", "rev", t0.Add(day))
		require.NoError(t, err)
		require.Len(t, recompute(t, st, ts, []string{"p"}, t0.Add(day)), 1, "a reversal takes its points back")
		require.Equal(t, "", tierOf(t, b, "p"))
	})

	t.Run("SweepPagesByKey", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		for _, id := range []string{"k1", "k2", "k3", "k4", "k5"} {
			order(t, st, id, "o", 250, t0)
		}
		var after string
		var pages, changed int
		for {
			page, err := st.RecomputeTiers(ctx, &store.TierRecompute{Tiers: spendTiers, After: after, Limit: 2, Now: t0, Reason: "sweep"})
			require.NoError(t, err)
			pages++
			changed += len(page.Changes)
			if page.Read < 2 {
				break
			}
			after = page.Last
		}
		require.Equal(t, 3, pages)
		require.Equal(t, 5, changed)
		require.Equal(t, 5, count(t, b.tx, "SELECT count(*) FROM customers WHERE tier = 'silver'"))
	})

	t.Run("NoTiersClears", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		order(t, st, "n", "o", 250, t0)
		recompute(t, st, spendTiers, []string{"n"}, t0)
		ch := recompute(t, st, nil, nil, t0)
		require.Len(t, ch, 1)
		require.Equal(t, "", tierOf(t, b, "n"))
	})

	t.Run("MatchesTierFor", func(t *testing.T) {
		t.Parallel()
		st, b := setup(t, db)
		ts := tiers(t, "  - { name: a, min_spend: 50 }\n  - { name: b, min_points: 100, over: rolling_365d }\n  - { name: c, min_spend: 300, over: calendar_year }\n")
		rs := &rules.RuleSet{Tiers: ts}
		now := t0.Add(30 * day)
		cases := []struct {
			id     string
			orders []float64 // this year
			old    float64   // last year
			points int64
		}{
			{id: "m0"}, {id: "m1", orders: []float64{49.99}}, {id: "m2", old: 500},
			{id: "m3", orders: []float64{100, 200}}, {id: "m4", old: 40, points: 100}, {id: "m5", orders: []float64{299.99}, points: 99},
		}
		for _, c := range cases {
			order(t, st, c.id, "old", c.old, now.AddDate(-1, -1, 0))
			var year int64
			for i, o := range c.orders {
				order(t, st, c.id, string(rune('a'+i)), o, now)
				year += int64(o*100 + 0.5)
			}
			if c.points > 0 {
				_, err := st.GrantPoints(ctx, []store.PointsGrantReq{{CustomerID: c.id, Amount: c.points, Reason: "t", GrantedAt: now, Key: "p"}})
				require.NoError(t, err)
			}
			recompute(t, st, ts, []string{c.id}, now)
			want := rs.TierFor(rules.TierProgress{
				Spend:  map[string]int64{rules.TierLifetime: year + int64(c.old*100+0.5), rules.TierCalendarYear: year},
				Points: map[string]int64{rules.TierRolling365d: c.points}})
			require.Equal(t, want, tierOf(t, b, c.id), c.id)
		}
	})
}
