package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/rules"
)

func TestPrefilterSQL(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, when string
		wantSQL    string // "" means no prefilter (every customer is read)
	}{
		{"DaysSince", `days_since(customer.last_order_at) >= 60`, "last_order_at <= $1"},
		{"Stage", `customer.stage == "churned"`, "stage = $1"},
		{"StageIn", `customer.stage in ["a", "b"]`, "stage = ANY($1::text[])"},
		{"OrdersCount", `customer.orders_count >= 5`, "orders_count >= $1"},
		{"OrdersCountEqual", `customer.orders_count == 1`, "orders_count = $1"},
		{"OrdersCountNotEqual", `1 != customer.orders_count`, "orders_count <> $1"},
		{"StageNotEqual", `customer.stage != "churned"`, "stage <> $1"},
		{"NoCoupon", `!has(customer.coupon_expires_at)`, "(coupon_expires_at IS NULL OR coupon_expires_at <= $1 OR coupon_expires_at = 'infinity')"},
		{"HasCoupon", `has(customer.coupon_expires_at)`, "coupon_expires_at > $1"},
		{"NeverOrdered", `!has(customer.last_order_at)`, "(last_order_at IS NULL OR last_order_at IN ('-infinity', 'infinity', '0001-01-01 00:00:00+00'))"},
		{"Subscribed", `!customer.unsubscribed`, "(unsubscribed_at IS NULL OR unsubscribed_at IN ('-infinity', 'infinity', '0001-01-01 00:00:00+00'))"},
		{"HugeDays", `days_since(customer.last_order_at) < 1e6`, ""},
		{"Untranslatable", `customer.name == "Ana"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs, err := rules.Parse("r.yaml", []byte("version: 1\nrules:\n  - name: r\n    schedule: \"@daily\"\n    cooldown: 1d\n    when: '"+tt.when+"'\n    actions:\n      - stage: reach\n"), rules.ParseOptions{})
			require.NoError(t, err)
			p := rs.Rule("r").Prefilter()
			if tt.wantSQL == "" {
				require.Nil(t, p)
				return
			}
			require.NotNil(t, p)
			var args []any
			require.Equal(t, tt.wantSQL, prefilterSQL(p, now, &args))
		})
	}
}
