package rules

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestJourneyParse(t *testing.T) {
	t.Parallel()

	t.Run("IssueSketch", func(t *testing.T) {
		t.Parallel()
		data, err := os.ReadFile("testdata/journey_cart.yaml")
		require.NoError(t, err)
		rs, err := Parse("cart.yaml", data, ParseOptions{})
		require.NoError(t, err)
		r := rs.Rule("abandoned-cart")
		require.True(t, r.IsJourney())
		var got []string
		for _, in := range r.Journey.Instrs {
			got = append(got, in.Describe(r))
		}
		require.Equal(t, []string{"wait 1h0m0s", "email cart_reminder", "wait for cart_updated within 24h0m0s", "jump",
			"if customer.orders_count == 0", "coupon percent 5", "email cart_last_chance"}, got)
		require.Equal(t, "order_placed", r.Journey.ExitOn)
		key, err := r.RunKey(Input{Event: &Event{Type: "checkout_started", Properties: map[string]any{"checkout_id": "c1"}}})
		require.NoError(t, err)
		require.Equal(t, "c1", key)
		exits, err := r.Exits(Input{Event: &Event{Type: "order_placed", Properties: map[string]any{"checkout_id": "c2"}}, Run: Run{Key: "c1"}})
		require.NoError(t, err)
		require.False(t, exits)
		exits, err = r.Exits(Input{Event: &Event{Type: "order_placed", Properties: map[string]any{"checkout_id": "c1"}}, Run: Run{Key: "c1"}})
		require.NoError(t, err)
		require.True(t, exits)
	})

	const head = "version: 1\nrules:\n  - name: j\n    on: checkout_started\n    actions:\n"
	tests := []struct {
		name, steps string
		want        string // substring of the first finding, with position
	}{
		{"WaitForWithoutWithin", "      - wait_for: { event: cart_updated }\n", "f.yaml:6:19: rule \"j\": wait_for without within"},
		{"UnreachableAfterExit", "      - exit: true\n      - wait: 1h\n", "f.yaml:7:9: rule \"j\": unreachable step"},
		{"BadDuration", "      - wait: 1x\n", "f.yaml:6:15: rule \"j\": wait:"},
		{"BadTime", "      - wait_until: \"25:00\"\n", "f.yaml:6:21: rule \"j\": wait_until: invalid time"},
		{"UnknownEvent", "      - wait_for: { event: cart_updatd, within: 1d }\n", "f.yaml:6:28: warning: rule \"j\": unknown event \"cart_updatd\""},
		{"RunKeyTyped", "      - wait_for: { event: cart_updated, within: 1d, when: \"run.kee == 1\" }\n", "rule \"j\": wait_for when:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, findings := Check("f.yaml", []byte(head+tt.steps), ParseOptions{})
			require.NotEmpty(t, findings)
			var all []string
			for _, f := range findings {
				all = append(all, f.Error())
			}
			require.Contains(t, strings.Join(all, "\n"), tt.want)
		})
	}

	t.Run("WaitUntilWeekdays", func(t *testing.T) {
		t.Parallel()
		rs, err := Parse("f.yaml", []byte(head+"      - wait_until: { time: \"10:00\", weekdays: [mon] }\n      - email: { template: x }\n    reentry: 7d\n"), ParseOptions{})
		require.NoError(t, err)
		r := rs.Rules[0]
		in := r.Journey.Instrs[0]
		now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) // a Tuesday
		next := in.NextLocal(now, "Europe/Berlin", r.Location)
		require.Equal(t, "2026-12-07T09:00:00Z", next.UTC().Format("2006-01-02T15:04:05Z"))
		require.Equal(t, "7d", r.Journey.Reentry)
	})
}
