package report

import (
	"context"
	"slices"
	"time"

	"github.com/ciclohq/ciclo/store"
)

// Rules is the per-rule report: `ciclo report rules`, GET
// /v1/reports/rules and the dashboard's rule table.
type Rules struct {
	From                  time.Time   `json:"from"`
	To                    time.Time   `json:"to"`
	Now                   time.Time   `json:"generated_at"`
	AttributionWindowDays float64     `json:"attribution_window_days"`
	Rules                 []*RuleStat `json:"rules"`
}

// RuleStat is what one rule did in the report's range.
type RuleStat struct {
	Rule    string `json:"rule"`
	Firings int64  `json:"firings"`
	// Emails and Webhooks count deliveries by status: sent, suppressed,
	// capped (skipped by the frequency cap), failed, queued.
	Emails   DeliveryCounts `json:"emails"`
	Webhooks DeliveryCounts `json:"webhooks"`
	Coupons  CouponCounts   `json:"coupons"`
	// RedemptionRate is redeemed ÷ issued; null without coupons.
	RedemptionRate *float64 `json:"redemption_rate"`
	// AttributedOrders and AttributedRevenue are the orders placed within
	// the attribution window after a firing of the rule for the customer.
	AttributedOrders  int64   `json:"attributed_orders"`
	AttributedRevenue float64 `json:"attributed_revenue"`
	// Holdout compares treated and held-out customers for rules with a
	// holdout: the share of each group that placed an order within the
	// attribution window after the rule first fired for them in the range,
	// the lift and its p-value; nil for rules without held-out firings.
	Holdout *Lift `json:"holdout,omitempty"`
}

// DeliveryCounts are deliveries by status.
type DeliveryCounts struct {
	Sent       int64 `json:"sent"`
	Suppressed int64 `json:"suppressed"`
	Capped     int64 `json:"capped"`
	Failed     int64 `json:"failed"`
	Queued     int64 `json:"queued"`
}

// CouponCounts are a rule's coupons issued in the range and what became of them.
type CouponCounts struct {
	Issued   int64 `json:"issued"`
	Redeemed int64 `json:"redeemed"`
	Expired  int64 `json:"expired"`
}

func (d *DeliveryCounts) add(status string, n int64) {
	switch status {
	case store.DeliverySent:
		d.Sent += n
	case store.DeliverySuppressed:
		d.Suppressed += n
	case store.DeliverySkippedCap:
		d.Capped += n
	case store.DeliveryFailed:
		d.Failed += n
	default:
		d.Queued += n
	}
}

// BuildRules computes the per-rule report over params' range. Rules in
// params.Rules come first, in their order, then any others found in the
// data, alphabetically.
func BuildRules(ctx context.Context, st *store.Store, params Params) (*Rules, error) {
	p, err := params.Normalize()
	if err != nil {
		return nil, err
	}
	if err := st.ReportSettings(ctx); err != nil {
		return nil, err
	}
	rep := &Rules{From: p.From, To: p.To, Now: p.Now, AttributionWindowDays: p.AttributionWindow.Hours() / 24}
	byName := map[string]*RuleStat{}
	get := func(name string) *RuleStat {
		if r, ok := byName[name]; ok {
			return r
		}
		r := &RuleStat{Rule: name}
		byName[name] = r
		rep.Rules = append(rep.Rules, r)
		return r
	}
	for _, name := range p.Rules {
		get(name)
	}
	known := len(rep.Rules)

	firings, err := st.ReportRuleFirings(ctx, p.From, p.To)
	if err != nil {
		return nil, err
	}
	for _, f := range firings {
		get(f.Rule).Firings = f.N
	}
	deliveries, err := st.ReportRuleDeliveries(ctx, p.From, p.To)
	if err != nil {
		return nil, err
	}
	for _, d := range deliveries {
		r := get(d.Rule)
		if d.Channel == "webhook" {
			r.Webhooks.add(d.Status, d.N)
		} else {
			r.Emails.add(d.Status, d.N)
		}
	}
	coupons, err := st.ReportRuleCoupons(ctx, p.From, p.To, p.Now)
	if err != nil {
		return nil, err
	}
	for _, c := range coupons {
		r := get(c.Rule)
		r.Coupons = CouponCounts{Issued: c.Issued, Redeemed: c.Redeemed, Expired: c.Expired}
		r.RedemptionRate = ratio(c.Redeemed, c.Issued).Rate
	}
	revenue, err := st.ReportRuleRevenue(ctx, p.From, p.To, p.OrderEvents, p.AttributionWindow)
	if err != nil {
		return nil, err
	}
	for _, rv := range revenue {
		r := get(rv.Rule)
		r.AttributedOrders, r.AttributedRevenue = rv.Orders, rv.Revenue
	}
	groups, err := st.ReportRuleHoldout(ctx, p.From, p.To, p.OrderEvents, p.AttributionWindow)
	if err != nil {
		return nil, err
	}
	arms := map[string]*[2]store.RuleHoldoutGroup{} // [treated, held out]
	for _, g := range groups {
		a, ok := arms[g.Rule]
		if !ok {
			a = &[2]store.RuleHoldoutGroup{}
			arms[g.Rule] = a
		}
		if g.Holdout {
			a[1] = g
		} else {
			a[0] = g
		}
	}
	for name, a := range arms {
		l := CompareGroups(a[0].Customers, a[0].Converted, a[1].Customers, a[1].Converted)
		get(name).Holdout = &l
	}
	slices.SortFunc(rep.Rules[known:], func(a, b *RuleStat) int {
		switch {
		case a.Rule < b.Rule:
			return -1
		case a.Rule > b.Rule:
			return 1
		}
		return 0
	})
	return rep, nil
}
