package rules

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPointsAction(t *testing.T) {
	t.Parallel()
	const file = `version: 1
rules:
  - name: points-per-order
    on: order_placed
    actions:
      - points: { amount: "floor((event.properties.total ?? 0) / 10)", expires_in: 365d, pending_for: 14d, reason: "10% back in points" }
  - name: first-order-points
    on: order_placed
    when: customer.orders_count == 1
    actions:
      - points: { amount: 100, expires_in: 30d }
`
	rs, err := Parse("r.yaml", []byte(file), testOpts())
	require.NoError(t, err)
	for _, w := range rs.Warnings {
		require.Contains(t, w.Message, "unreachable", "no warning but the unused stages")
	}
	per := rs.Rule("points-per-order")
	a := per.Actions[0].Points
	require.Equal(t, ActionPoints, per.Actions[0].Kind())
	require.Equal(t, 365*24*time.Hour, a.ExpiresIn)
	require.Equal(t, 14*24*time.Hour, a.PendingFor)
	require.Equal(t, "10% back in points", a.Reason)
	require.Equal(t, "first-order-points", rs.Rule("first-order-points").Actions[0].Points.Reason, "the reason defaults to the rule's name")

	tests := []struct {
		name    string
		props   map[string]any
		want    int64
		wantErr string
	}{
		{name: "RoundsDown", props: map[string]any{"total": 129.9}, want: 12},
		{name: "Integer", props: map[string]any{"total": 50}, want: 5},
		{name: "MissingIsZero", props: map[string]any{}, want: 0},
		{name: "Negative", props: map[string]any{"total": -30.0}, want: 0},
		{name: "String", props: map[string]any{"total": "12"}, wantErr: "points amount"},
		{name: "Infinite", props: map[string]any{"total": math.Inf(1)}, wantErr: "finite"},
		{name: "Huge", props: map[string]any{"total": 1e14}, wantErr: "over the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := per.PointsFor(a, Input{Event: &Event{Type: "order_placed", Properties: tt.props}, Now: time.Now()})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.ErrorContains(t, err, `rule "points-per-order"`)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestLoyaltyParseErrors(t *testing.T) {
	t.Parallel()
	rule := func(extra, action string) string {
		return "version: 1\nrules:\n  - name: r\n    on: order_placed\n" + extra + "    actions:\n      - " + action + "\n"
	}
	tests := []struct {
		name string
		file string
		want string
	}{
		{name: "PointsWithoutAmount", file: rule("", "points: { expires_in: 30d }"), want: "points needs an amount"},
		{name: "PointsAmountNotNumber", file: rule("", `points: { amount: "customer.email" }`), want: "points amount"},
		{name: "PointsUnknownField", file: rule("", `points: { amount: "customer.ordrs" }`), want: `customer has no field "ordrs"`},
		{name: "PointsUnknownKey", file: rule("", `points: { amount: 1, expires: 30d }`), want: `unknown key "expires" in points`},
		{name: "PointsBadDuration", file: rule("", `points: { amount: 1, expires_in: soon }`), want: "expires_in"},
		{name: "HoldoutTooLarge", file: rule("    holdout: 80%\n", "stage: retention"), want: "holdout \"80%\" is out of range"},
		{name: "HoldoutNotPercent", file: rule("    holdout: lots\n", "stage: retention"), want: `holdout "lots" is not a percentage`},
		{name: "HoldoutTransactional", file: rule("    transactional: true\n    holdout: 10%\n", "stage: retention"), want: "a transactional rule cannot have a holdout"},
		{name: "TierWithoutThreshold", file: "version: 1\ntiers: [{name: gold}]\nrules: []\n", want: `tier "gold" needs min_spend or min_points`},
		{name: "TierBothThresholds", file: "version: 1\ntiers: [{name: gold, min_spend: 10, min_points: 10}]\nrules: []\n", want: "both min_spend and min_points"},
		{name: "TierUnknownWindow", file: "version: 1\ntiers: [{name: gold, min_spend: 10, over: decade}]\nrules: []\n", want: `unknown tier window "decade"`},
		{name: "TierDuplicate", file: "version: 1\ntiers: [{name: gold, min_spend: 10}, {name: gold, min_spend: 20}]\nrules: []\n", want: `duplicate tier "gold"`},
		{name: "TierUnsorted", file: "version: 1\ntiers: [{name: gold, min_spend: 1000}, {name: silver, min_spend: 200}]\nrules: []\n", want: `tier "silver" (min_spend 200 over lifetime) does not need more than "gold" before it (min_spend 1000)`},
		{name: "TierSameThreshold", file: "version: 1\ntiers: [{name: a, min_points: 10, over: calendar_year}, {name: b, min_points: 10, over: calendar_year}]\nrules: []\n", want: `tier "b" (min_points 10 over calendar_year) does not need more than "a"`},
		{name: "TierSpendNotAmount", file: "version: 1\ntiers: [{name: gold, min_spend: lots}]\nrules: []\n", want: `tier "gold" min_spend "lots" is not an amount`},
		{name: "TierSpendSubCent", file: "version: 1\ntiers: [{name: gold, min_spend: 10.005}]\nrules: []\n", want: `min_spend "10.005" is not an amount`},
		{name: "TierSpendNegative", file: "version: 1\ntiers: [{name: gold, min_spend: -5}]\nrules: []\n", want: "tier min_spend must be positive"},
		{name: "TierPointsZero", file: "version: 1\ntiers: [{name: gold, min_points: 0}]\nrules: []\n", want: "tier min_points must be positive"},
		{name: "TierWindowKey", file: "version: 1\ntiers: [{name: gold, min_spend: 10, window: lifetime}]\nrules: []\n", want: `unknown key "window" in tier`},
		{name: "TierNotList", file: "version: 1\ntiers: {name: gold}\nrules: []\n", want: "tiers must be a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("r.yaml", []byte(tt.file), testOpts())
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestHoldout(t *testing.T) {
	t.Parallel()
	const file = `version: 1
defaults:
  holdout: 5%
rules:
  - name: win-back
    on: order_placed
    holdout: 10%
    actions: [{stage: retention}]
  - name: default-holdout
    on: order_placed
    actions: [{stage: retention}]
  - name: receipt
    on: order_placed
    transactional: true
    actions: [{stage: retention}]
`
	rs, err := Parse("r.yaml", []byte(file), testOpts())
	require.NoError(t, err)
	wb, def, receipt := rs.Rule("win-back"), rs.Rule("default-holdout"), rs.Rule("receipt")
	require.InDelta(t, 0.10, wb.Holdout, 0)
	require.InDelta(t, 0.05, def.Holdout, 0)
	require.Zero(t, receipt.Holdout, "transactional rules are never held out")

	// The share is within one percentage point of the setting on 100k
	// customers, and the same customers are held out every time.
	const n = 100_000
	held, both := 0, 0
	for i := range n {
		id := fmt.Sprintf("customer-%d", i)
		if wb.HeldOut(id) {
			held++
			require.True(t, wb.HeldOut(id), "stable")
			if def.HeldOut(id) {
				both++
			}
		}
		require.False(t, receipt.HeldOut(id))
	}
	require.InDelta(t, 0.10, float64(held)/n, 0.01)
	// Salted per rule: the groups of two rules are independent (about 5%
	// of win-back's holdout is also in default-holdout's).
	require.InDelta(t, 0.05, float64(both)/float64(held), 0.01)

	// A reparse (another process, a restart) assigns the same customers.
	rs2, err := Parse("r.yaml", []byte(file), testOpts())
	require.NoError(t, err)
	for i := range 1000 {
		id := fmt.Sprintf("customer-%d", i)
		require.Equal(t, wb.HeldOut(id), rs2.Rule("win-back").HeldOut(id))
	}
	// Fixed values guard the hash itself: changing it would move customers
	// between groups of running experiments.
	require.InDelta(t, 0.69368, holdoutBucket("win-back", "customer-1"), 0.0001)
}

func TestTiers(t *testing.T) {
	t.Parallel()
	const file = `version: 1
tiers:
  - { name: silver, min_spend: 200 }
  - { name: gold, min_spend: 999.90, over: rolling_365d }
  - { name: vip, min_points: 5000, over: calendar_year }
rules: []
`
	rs, err := Parse("r.yaml", []byte(file), testOpts())
	require.NoError(t, err)
	require.Equal(t, []Tier{
		{Name: "silver", Kind: TierBySpend, Min: 20000, Over: TierLifetime},
		{Name: "gold", Kind: TierBySpend, Min: 99990, Over: TierRolling365d},
		{Name: "vip", Kind: TierByPoints, Min: 5000, Over: TierCalendarYear},
	}, rs.Tiers)
	tests := []struct {
		name string
		p    TierProgress
		want string
	}{
		{name: "Empty", p: TierProgress{}, want: ""},
		{name: "None", p: TierProgress{Spend: map[string]int64{TierLifetime: 19999}}, want: ""},
		{name: "SilverAtThreshold", p: TierProgress{Spend: map[string]int64{TierLifetime: 20000}}, want: "silver"},
		{name: "Silver", p: TierProgress{Spend: map[string]int64{TierLifetime: 150000, TierRolling365d: 99989}}, want: "silver"},
		{name: "Gold", p: TierProgress{Spend: map[string]int64{TierLifetime: 150000, TierRolling365d: 99990}}, want: "gold"},
		{name: "GoldWithoutSilverWindow", p: TierProgress{Spend: map[string]int64{TierRolling365d: 99990}}, want: "gold"},
		{name: "VIPByPoints", p: TierProgress{Points: map[string]int64{TierCalendarYear: 5000}}, want: "vip"},
		{name: "PointsOtherWindow", p: TierProgress{Points: map[string]int64{TierLifetime: 9000, TierCalendarYear: 4999}}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, rs.TierFor(tt.p))
		})
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	require.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), WindowStart(TierCalendarYear, now))
	require.Equal(t, now.Add(-365*24*time.Hour), WindowStart(TierRolling365d, now))
	require.True(t, WindowStart(TierLifetime, now).IsZero())
}

func TestPointsDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		defaults string
		wantDays int
		wantVal  float64
		wantErr  string
	}{
		{name: "Unset", defaults: "{}", wantDays: 3},
		{name: "Set", defaults: "{points_expiring_days: 7, points_value: 0.01}", wantDays: 7, wantVal: 0.01},
		{name: "DaysZero", defaults: "{points_expiring_days: 0}", wantErr: "points_expiring_days must be between 1 and 365"},
		{name: "ValueNegative", defaults: "{points_value: -1}", wantErr: "points_value must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs, err := Parse("r.yaml", []byte("version: 1\ndefaults: "+tt.defaults+"\nrules:\n  - name: a\n    on: x\n    actions: [{stage: reach}]\n"), ParseOptions{})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantDays, rs.Defaults.ExpiringDays())
			require.Equal(t, tt.wantVal, rs.Defaults.PointsValue)
		})
	}
}
