package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/worker"
)

const tiersE2ERules = `version: 1
tiers:
  - { name: silver, min_spend: 200 }
  - { name: gold, min_spend: 1000, over: rolling_365d }
rules:
  - name: points-per-order
    on: order_placed
    actions:
      - points: { amount: "floor(event.properties.total ?? 0)", reason: "points on order" }
  - name: gold-tier-loyalty
    on: tier_changed
    when: event.properties.to == "gold" && customer.tier == "gold"
    actions:
      - stage: loyalty
`

// TestTiersLifecycle runs loyalty tiers end to end on real Postgres with an
// injected clock: an order reaching gold's spend moves the customer to gold
// while its event is evaluated, and the tier_changed event fires the rule
// that stages gold customers as loyal; a refund takes the order's points
// back (a points_spent event) and drops the tier to silver; a year later
// the daily tier sweep drops another customer from gold, its window having
// rolled past its order. Each change is in tier_transitions and in the
// customer's timeline.
func TestTiersLifecycle(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(rulesPath, []byte(tiersE2ERules), 0o644))
	b := channelSetupWith(t, t0, func(c *app.Config) {
		c.RulesPath = rulesPath
		c.Worker.TierSweepInterval = time.Hour // once at start; later runs are enqueued below
	})
	ctx := context.Background()
	transitions := func(customer, where string) int {
		return b.db.Count(t, "tier_transitions", "customer_id = '"+customer+"' AND "+where)
	}

	b.event(t, `{"customer_id":"t-1","type":"order_placed","email":"tia@example.com","properties":{"total":1200,"order_id":"o-1"}}`)
	waitFor(t, "gold tier staged as loyalty", func() bool {
		return b.db.Count(t, "stage_transitions", "customer_id = 't-1' AND to_stage = 'loyalty' AND rule = 'gold-tier-loyalty'") == 1
	})
	require.Equal(t, 1, transitions("t-1", "from_tier = '' AND to_tier = 'gold' AND reason LIKE 'event order_placed %'"))
	require.Equal(t, 1, b.db.Count(t, "events", "customer_id = 't-1' AND type = 'tier_changed' AND properties->>'to' = 'gold'"))

	b.event(t, `{"customer_id":"t-1","type":"order_refunded","properties":{"order_id":"o-1","amount":300}}`)
	waitFor(t, "tier down to silver", func() bool {
		return transitions("t-1", "from_tier = 'gold' AND to_tier = 'silver' AND reason LIKE 'event order_refunded %'") == 1
	})
	waitJobs(t, b.db)
	require.Equal(t, 1, b.db.Count(t, "events", "customer_id = 't-1' AND type = 'points_spent' AND properties->>'kind' = 'reverse'"+
		" AND (properties->>'points')::int = 1200 AND properties->>'order_id' = 'o-1'"))
	sum, err := store.New(b.db.Pool).PointsSummary(ctx, "t-1", b.clock.Now())
	require.NoError(t, err)
	require.Zero(t, sum.Balance, "the refunded order's points are taken back")
	require.Equal(t, "silver", sum.Tier)

	b.event(t, `{"customer_id":"t-2","type":"order_placed","properties":{"total":1000,"order_id":"o-2"}}`)
	waitFor(t, "t-2 gold", func() bool { return transitions("t-2", "to_tier = 'gold'") == 1 })
	waitJobs(t, b.db)

	// A year and a day later the sweep finds t-2's order out of the window.
	b.clock.Set(t0.Add(366 * 24 * time.Hour))
	rs, err := rules.Parse("r.yaml", []byte(tiersE2ERules), rules.ParseOptions{})
	require.NoError(t, err)
	client, err := worker.NewClient(b.db.Pool, &worker.Config{Rules: rules.NewHolder(rs), InsertOnly: true, Schema: b.db.Schema})
	require.NoError(t, err)
	_, err = client.Insert(ctx, jobs.TierSweepArgs{}, nil)
	require.NoError(t, err)
	waitFor(t, "the sweep downgrades t-2", func() bool {
		return transitions("t-2", "from_tier = 'gold' AND to_tier = 'silver' AND reason = 'tier sweep'") == 1
	})
	waitJobs(t, b.db)
	require.Equal(t, 2, transitions("t-1", "true"), "t-1 was silver already")

	entries, err := store.New(b.db.Pool).Timeline(ctx, "t-1", 100)
	require.NoError(t, err)
	var tiers []string
	for _, e := range entries {
		if e.Kind == store.TimelineTier {
			tiers = append(tiers, fmt.Sprintf("%v -> %v", e.Detail["from"], e.Detail["to"]))
		}
	}
	require.Equal(t, []string{" -> gold", "gold -> silver"}, tiers, strings.Join(tiers, "\n"))
}

// TestExampleGoldTier checks rules.example.yaml's tiers with its
// gold-tier-loyalty rule: a first order of 1000 puts the customer in gold
// (rolling 365 days) and the tier_changed event stages it as loyal.
func TestExampleGoldTier(t *testing.T) {
	t.Parallel()
	b := setup(t)
	status, resp := post(t, b.url, token, `{"customer_id":"g-1","type":"order_placed","email":"gia@example.com","properties":{"total":1000,"order_id":"o-1"}}`)
	require.Equal(t, 202, status, resp)
	waitFor(t, "gold customer staged as loyal", func() bool {
		return b.db.Count(t, "stage_transitions", "customer_id = 'g-1' AND to_stage = 'loyalty' AND rule = 'gold-tier-loyalty'") == 1
	})
	require.Equal(t, 1, b.db.Count(t, "tier_transitions", "customer_id = 'g-1' AND from_tier = '' AND to_tier = 'gold'"))
	var stage string
	require.NoError(t, b.db.Pool.QueryRow(context.Background(), "SELECT stage FROM customers WHERE id = 'g-1'").Scan(&stage))
	require.Equal(t, "loyalty", stage)
}
