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

// parseWhen compiles when as the condition of a scheduled rule.
func parseWhen(t *testing.T, when string) *rules.Rule {
	t.Helper()
	rs, err := rules.Parse("r.yaml", []byte("version: 1\nrules:\n  - name: r\n    schedule: \"@daily\"\n    cooldown: 1d\n    when: '"+when+"'\n    actions:\n      - stage: reach\n"), rules.ParseOptions{})
	require.NoError(t, err)
	return rs.Rule("r")
}

// TestSweepPagePrefilter runs pushed-down conditions for real: each case
// names the customers a sweep must read and match.
func TestSweepPagePrefilter(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	_, err := db.Pool.Exec(ctx, `INSERT INTO customers (id, orders_count, last_order_at, unsubscribed_at) VALUES
		('c0', 0, NULL, NULL), ('c1', 1, NULL, NULL), ('c2', 2, $1, $1),
		('inf', 3, 'infinity', 'infinity'),       -- read as zero times: never happened
		('zero', 3, '0001-01-01 00:00:00+00', '0001-01-01 00:00:00+00'),
		('y1000', 3, '1000-01-01 00:00:00+00', NULL) -- days_since saturates at ~106,751 days`, now.AddDate(0, 0, -10))
	require.NoError(t, err)

	tests := []struct {
		when   string
		pushed bool // whether the condition is pushed down
		want   []string
	}{
		{`customer.orders_count == 1`, true, []string{"c1"}},
		{`1 == customer.orders_count`, true, []string{"c1"}},
		{`customer.orders_count != 1`, true, []string{"c0", "c2", "inf", "y1000", "zero"}},
		{`customer.orders_count == 1 || days_since(customer.last_order_at) < 30`, true, []string{"c1", "c2"}},
		{`!has(customer.last_order_at)`, true, []string{"c0", "c1", "inf", "zero"}},
		{`!customer.unsubscribed`, true, []string{"c0", "c1", "inf", "y1000", "zero"}},
		{`days_since(customer.last_order_at) < 1e6`, false, []string{"c2", "y1000"}},
		{`days_since(customer.last_order_at) < 200000`, false, []string{"c2", "y1000"}},
		{`days_since(customer.last_order_at) >= 200000`, false, nil},
		{`days_until(customer.last_order_at) > -1e300`, false, []string{"c2", "y1000"}},
		{`$env.customer.orders_count == 1`, false, []string{"c1"}},
	}
	for _, tt := range tests {
		t.Run(tt.when, func(t *testing.T) {
			t.Parallel()
			r := parseWhen(t, tt.when)
			require.Equal(t, tt.pushed, r.Prefilter() != nil, "pushed down")
			sq := store.NewSweepQuery(r.Fields, r.Prefilter())
			page, err := store.New(db.Pool).SweepPage(ctx, sq, now, "", "", 100, nil)
			require.NoError(t, err, "pushed down as %s", sq.PushedSQL)
			got, _ := matching(t, []*rules.Rule{r}, now, page)
			require.Equal(t, tt.want, got, "pushed down as %s", sq.PushedSQL)
		})
	}
}
