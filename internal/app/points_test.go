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
	"github.com/ciclohq/ciclo/store"
)

const pointsE2ERules = `version: 1
defaults: { points_expiring_days: 3 }
rules:
  - name: first-order-points
    on: order_placed
    when: customer.orders_count == 1
    actions:
      - points: { amount: "500", expires_in: 30d, reason: "first order bonus" }
  - name: points-expiring
    on: points_expiring
    when: customer.points_balance > 0
    actions:
      - email: { template: points_expiring }
`

// TestPointsLifecycle runs the loyalty points story end to end on real
// Postgres and SMTP with an injected clock: a first order grants 500
// points valid 30 days; 3 days before they expire the expiry sweep records
// points_expiring and the reminder email (showing the balance and the
// expiry date) reaches SMTP; once they expire, points_expired is recorded
// and the balance is 0; every step is in the customer's timeline (what
// `ciclo customer` prints).
func TestPointsLifecycle(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(rulesPath, []byte(pointsE2ERules), 0o644))
	b := channelSetupWith(t, t0, func(c *app.Config) {
		c.RulesPath = rulesPath
		c.Worker.PointsExpiryInterval = 50 * time.Millisecond
	})
	ctx := context.Background()
	st := store.New(b.db.Pool)

	b.event(t, `{"customer_id":"p-1","type":"order_placed","email":"pia@example.com","name":"Pia","properties":{"total":80,"order_id":"o-1"}}`)
	waitFor(t, "points granted", func() bool {
		return b.db.Count(t, "events", "customer_id = 'p-1' AND type = 'points_granted'") == 1
	})
	require.Equal(t, 1, b.db.Count(t, "points_lots", "customer_id = 'p-1' AND amount = 500 AND rule = 'first-order-points'"+
		" AND order_id = 'o-1' AND reason = 'first order bonus'"))
	sum, err := st.PointsSummary(ctx, "p-1", t0)
	require.NoError(t, err)
	require.Equal(t, int64(500), sum.Balance)
	require.True(t, sum.NextExpiry.Equal(t0.Add(30*day)), "%s", sum.NextExpiry)
	time.Sleep(200 * time.Millisecond) // a few expiry sweeps: nothing is due
	require.Equal(t, 0, b.db.Count(t, "events", "customer_id = 'p-1' AND type IN ('points_expiring', 'points_expired')"))

	// Three days before the expiry: the reminder.
	b.clock.Set(t0.Add(27*day + time.Hour))
	msgs := b.smtp.WaitMessages(t, 1, 15*time.Second)
	require.Equal(t, []string{"pia@example.com"}, msgs[0].To)
	require.Contains(t, msgs[0].Header.Get("Subject"), "Your points expire soon")
	require.Contains(t, msgs[0].Text, "Your balance: 500 points")
	require.Contains(t, msgs[0].Text, "June 3, 2026", "the expiry date: %s", msgs[0].Text)
	require.Equal(t, 1, b.db.Count(t, "events", "customer_id = 'p-1' AND type = 'points_expiring'"))

	// Past the expiry: the lot is closed, the balance is 0.
	b.clock.Set(t0.Add(30*day + time.Hour))
	waitFor(t, "points expired", func() bool {
		return b.db.Count(t, "events", "customer_id = 'p-1' AND type = 'points_expired'") == 1
	})
	sum, err = st.PointsSummary(ctx, "p-1", b.clock.Now())
	require.NoError(t, err)
	require.Equal(t, int64(0), sum.Balance)
	waitJobs(t, b.db)
	require.Len(t, b.smtp.Messages(), 1, "one reminder")
	require.Equal(t, 1, b.db.Count(t, "events", "customer_id = 'p-1' AND type = 'points_expiring'"), "reminded once")

	entries, err := st.Timeline(ctx, "p-1", 100)
	require.NoError(t, err)
	var steps []string
	for _, e := range entries {
		switch e.Kind {
		case store.TimelineEvent:
			steps = append(steps, "event "+fmt.Sprint(e.Detail["type"]))
		case store.TimelinePoints:
			steps = append(steps, fmt.Sprintf("points %s %v", e.Detail["kind"], e.Detail["amount"]))
		case store.TimelineDelivery:
			steps = append(steps, "delivery "+e.Rule)
		}
	}
	// At one instant events come first; points_expired happens at the
	// expiry, the sweep's expiry entry when it ran.
	want := []string{"event order_placed", "event points_granted", "points grant 500", "event points_expiring",
		"delivery points-expiring", "event points_expired", "points expire -500"}
	require.Equal(t, want, steps, strings.Join(steps, "\n"))
}
