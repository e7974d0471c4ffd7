package rules

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type testBundle struct {
	data []byte
}

func setup(t *testing.T) (*RuleSet, *testBundle) {
	t.Helper()

	data, err := os.ReadFile(filepath.Join("testdata", "valid.yaml"))
	require.NoError(t, err)
	rs, err := Parse("valid.yaml", data, testOpts())
	require.NoError(t, err)
	return rs, &testBundle{data: data}
}

func TestRuleSet(t *testing.T) {
	t.Parallel()

	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

	t.Run("ParsesValidFile", func(t *testing.T) {
		t.Parallel()

		rs, _ := setup(t)
		// loyal-promoter reads score unguarded on purpose (EvaluateRuntimeError).
		require.Len(t, rs.Warnings, 1)
		require.Contains(t, rs.Warnings[0].Error(), `rule "loyal-promoter": when: event.properties.score is used as a number (>=) without a guard`)
		require.Equal(t, DefaultStages, rs.Stages)
		require.Equal(t, "templates", rs.TemplateDir)
		require.Equal(t, &FrequencyCap{Max: 3, Per: 7 * 24 * time.Hour}, rs.Defaults.FrequencyCap)
		require.Equal(t, &QuietHours{Start: 21 * time.Hour, End: 8 * time.Hour}, rs.Defaults.QuietHours)
		require.Len(t, rs.Rules, 7)

		fob := rs.Rule("first-order-bonus")
		require.NotNil(t, fob)
		require.Equal(t, "order_placed", fob.On)
		require.Equal(t, 16, fob.Line)
		require.Equal(t, 5, fob.Column)
		require.Equal(t, []Action{
			{Stage: "conversion"},
			{Coupon: &CouponAction{Kind: CouponPercent, Value: 10, ExpiresIn: 14 * 24 * time.Hour}},
			{Email: &EmailAction{Template: "first_order_bonus", Subject: "A gift for your first order"}},
		}, fob.Actions)
		require.Equal(t, []string{ActionStage, ActionCoupon, ActionEmail}, []string{fob.Actions[0].Kind(), fob.Actions[1].Kind(), fob.Actions[2].Kind()})

		require.True(t, rs.Rule("welcome").Transactional)

		wb := rs.Rule("win-back-90d")
		require.Equal(t, 90*24*time.Hour, wb.Cooldown)
		require.Equal(t, &FrequencyCap{Max: 1, Per: 30 * 24 * time.Hour}, wb.FrequencyCap)
		require.Equal(t, Action{Webhook: &WebhookAction{URL: "https://crm.example.com/hooks/ciclo", Secret: "s3cret"}}, wb.Actions[3])
		require.Equal(t, Action{Coupon: &CouponAction{Kind: CouponAmount, Value: 5, ExpiresIn: 30 * 24 * time.Hour}}, wb.Actions[1])
		require.Equal(t, ActionWebhook, wb.Actions[3].Kind())

		loyal := rs.Rule("loyal-fifth-order")
		require.Equal(t, &CouponAction{Kind: CouponFreeShipping, ExpiresIn: 30 * 24 * time.Hour}, loyal.Actions[1].Coupon)

		require.Nil(t, rs.Rule("nope"))
	})

	t.Run("Version", func(t *testing.T) {
		t.Parallel()

		rs, bundle := setup(t)
		require.Regexp(t, `^[0-9a-f]{12}$`, rs.Version)
		again, err := Parse("other-name.yaml", bundle.data, testOpts())
		require.NoError(t, err)
		require.Equal(t, rs.Version, again.Version)

		changed, err := Parse("valid.yaml", append(bundle.data, "\n# edited\n"...), testOpts())
		require.NoError(t, err)
		require.NotEqual(t, rs.Version, changed.Version)
	})

	t.Run("ForEventKeepsFileOrder", func(t *testing.T) {
		t.Parallel()

		rs, _ := setup(t)
		require.Equal(t, []string{"first-order-bonus", "repeat-purchase", "loyal-fifth-order"}, ruleNames(rs.ForEvent("order_placed")))
		require.Equal(t, []string{"welcome"}, ruleNames(rs.ForEvent("signed_up")))
		require.Empty(t, rs.ForEvent("unknown"))
		require.Empty(t, rs.ForEvent(""))
		require.Equal(t, []string{"at-risk-45d", "win-back-90d"}, ruleNames(rs.Scheduled()))
	})

	t.Run("Evaluate", func(t *testing.T) {
		t.Parallel()

		rs, _ := setup(t)
		tests := []struct {
			name     string
			customer Customer
			event    *Event
			want     []string
		}{
			{name: "FirstOrder", customer: Customer{OrdersCount: 1, Stage: "acquisition"}, event: &Event{Type: "order_placed"}, want: []string{"first-order-bonus"}},
			{name: "RepeatOrder", customer: Customer{OrdersCount: 2, Stage: "conversion"}, event: &Event{Type: "order_placed"}, want: []string{"repeat-purchase"}},
			{name: "FifthOrder", customer: Customer{OrdersCount: 5, Stage: "retention"}, event: &Event{Type: "order_placed"}, want: []string{"loyal-fifth-order"}},
			{name: "FifthOrderFromAtRisk", customer: Customer{OrdersCount: 5, Stage: "at_risk"}, event: &Event{Type: "order_placed"}, want: []string{"repeat-purchase", "loyal-fifth-order"}},
			{name: "ThirdOrderInRetention", customer: Customer{OrdersCount: 3, Stage: "retention"}, event: &Event{Type: "order_placed"}},
			{name: "SignedUpNoWhen", event: &Event{Type: "signed_up"}, want: []string{"welcome"}},
			{name: "Promoter", event: &Event{Type: "nps_answered", Properties: map[string]any{"score": 9}}, want: []string{"loyal-promoter"}},
			{name: "PromoterFloat", event: &Event{Type: "nps_answered", Properties: map[string]any{"score": 9.5}}, want: []string{"loyal-promoter"}},
			{name: "Detractor", event: &Event{Type: "nps_answered", Properties: map[string]any{"score": 3}}},
			{name: "NoEvent"},
			{name: "OtherEvent", event: &Event{Type: "page_viewed"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()

				got, err := rs.Evaluate(Input{Customer: tt.customer, Event: tt.event, Now: now})
				require.NoError(t, err)
				require.Equal(t, tt.want, ruleNames(got))
			})
		}
	})

	t.Run("EvaluateRuntimeError", func(t *testing.T) {
		t.Parallel()

		rs, _ := setup(t)
		got, err := rs.Evaluate(Input{Event: &Event{Type: "nps_answered"}, Now: now})
		require.ErrorContains(t, err, `rule "loyal-promoter": `)
		require.Empty(t, got)
	})

	t.Run("ScheduledMatch", func(t *testing.T) {
		t.Parallel()

		rs, _ := setup(t)
		wb := rs.Rule("win-back-90d")
		quiet := Customer{Stage: "retention", LastOrderAt: now.AddDate(0, 0, -100)}
		ok, err := wb.Match(Input{Customer: quiet, Now: now})
		require.NoError(t, err)
		require.True(t, ok)

		recent := Customer{Stage: "retention", LastOrderAt: now.AddDate(0, 0, -10)}
		ok, err = wb.Match(Input{Customer: recent, Now: now})
		require.NoError(t, err)
		require.False(t, ok)

		never := Customer{Stage: "acquisition"} // never ordered: NaN compares false
		ok, err = wb.Match(Input{Customer: never, Now: now})
		require.NoError(t, err)
		require.False(t, ok)
	})

	t.Run("Fields", func(t *testing.T) {
		t.Parallel()

		rs, _ := setup(t)
		require.Equal(t, []string{"orders_count"}, rs.Rule("first-order-bonus").Fields)
		require.Equal(t, []string{"orders_count", "stage"}, rs.Rule("repeat-purchase").Fields)
		require.Equal(t, []string{"last_order_at", "stage", "unsubscribed"}, rs.Rule("win-back-90d").Fields)
		require.Empty(t, rs.Rule("welcome").Fields)
		require.Empty(t, rs.Rule("loyal-promoter").Fields)
	})

	t.Run("CronSchedule", func(t *testing.T) {
		t.Parallel()

		rs, _ := setup(t)
		require.Nil(t, rs.Rule("welcome").CronSchedule())

		berlin, err := time.LoadLocation("Europe/Berlin")
		require.NoError(t, err)
		next := rs.Rule("at-risk-45d").CronSchedule().Next(now) // 09:00 Berlin = 07:00 UTC in summer
		require.True(t, time.Date(2025, 6, 2, 9, 0, 0, 0, berlin).Equal(next), "got %v", next)

		next = rs.Rule("win-back-90d").CronSchedule().Next(now) // @daily in UTC
		require.True(t, time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC).Equal(next), "got %v", next)
	})
}

func TestRule(t *testing.T) {
	t.Parallel()

	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

	compile := func(t *testing.T, when string) *Rule {
		t.Helper()
		data := "version: 1\nrules:\n  - name: r\n    on: e\n    when: '" + when + "'\n    actions:\n      - stage: reach\n"
		rs, err := Parse("r.yaml", []byte(data), ParseOptions{})
		require.NoError(t, err)
		return rs.Rule("r")
	}

	t.Run("Helpers", func(t *testing.T) {
		t.Parallel()

		customer := Customer{
			Timezone:     "America/New_York",
			CreatedAt:    now.Add(-36 * time.Hour),
			LastOrderAt:  now.AddDate(0, 0, -60),
			FirstOrderAt: time.Time{},
			Attributes:   map[string]any{"renewal_at": now.AddDate(0, 0, 10)},
		}
		tests := []struct {
			when string
			want bool
		}{
			{when: "days_since(customer.last_order_at) == 60", want: true},
			{when: "hours_since(customer.created_at) == 36", want: true},
			{when: "days_since(customer.created_at) == 1.5", want: true},
			{when: "days_until(now + duration(\"240h\")) == 10", want: true},
			{when: "days_since(customer.last_order_at) >= 60 && days_since(customer.last_order_at) < 61", want: true},
			{when: "has(customer.last_order_at)", want: true},
			{when: "!has(customer.first_order_at)", want: true},
			{when: "local_hour() == 8", want: true}, // 12:00 UTC is 08:00 in New York (EDT)
			{when: "now.Hour() == 12", want: true},
			// A zero time ("never") makes every comparison false, both ways.
			{when: "days_since(customer.first_order_at) >= 0", want: false},
			{when: "days_since(customer.first_order_at) < 0", want: false},
			{when: "days_since(customer.first_order_at) == days_since(customer.first_order_at)", want: false},
			{when: "hours_since(customer.first_order_at) > 0 || hours_since(customer.first_order_at) <= 0", want: false},
			{when: "days_until(customer.first_order_at) > 0 || days_until(customer.first_order_at) <= 0", want: false},
			{when: "days_since(customer.first_order_at) != 1", want: true}, // NaN != x is the one true comparison
		}
		for _, tt := range tests {
			t.Run(tt.when, func(t *testing.T) {
				t.Parallel()

				got, err := compile(t, tt.when).Match(Input{Customer: customer, Now: now})
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
			})
		}
	})

	t.Run("LocalHourFallsBackToUTC", func(t *testing.T) {
		t.Parallel()

		r := compile(t, "local_hour() == 12")
		for _, tz := range []string{"", "Not/AZone", "Local"} {
			got, err := r.Match(Input{Customer: Customer{Timezone: tz}, Now: now})
			require.NoError(t, err)
			require.True(t, got, "timezone %q", tz)
		}
		require.Equal(t, []string{"timezone"}, r.Fields)
	})

	t.Run("EmptyWhenAlwaysMatches", func(t *testing.T) {
		t.Parallel()

		rs, err := Parse("r.yaml", []byte("version: 1\nrules:\n  - name: r\n    on: e\n    actions:\n      - stage: reach\n"), ParseOptions{})
		require.NoError(t, err)
		got, err := rs.Rule("r").Match(Input{})
		require.NoError(t, err)
		require.True(t, got)
	})

	t.Run("FieldsWholeCustomer", func(t *testing.T) {
		t.Parallel()

		r := compile(t, `customer.attributes.vip == true && customer["stage"] == "x"`)
		require.Equal(t, []string{"attributes", "stage"}, r.Fields)
	})

	t.Run("RuntimeErrorNamesRule", func(t *testing.T) {
		t.Parallel()

		r := compile(t, "event.properties.score >= 9")
		_, err := r.Match(Input{Event: &Event{Type: "e"}, Now: now})
		require.ErrorContains(t, err, `rule "r": `)

		ok, err := r.Match(Input{Event: &Event{Type: "e", Properties: map[string]any{"score": 10}}, Now: now})
		require.NoError(t, err)
		require.True(t, ok)
	})
}

func ruleNames(rs []*Rule) []string {
	var names []string
	for _, r := range rs {
		names = append(names, r.Name)
	}
	return names
}
