package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/report"
	"github.com/ciclohq/ciclo/store"
)

// day is noon UTC of a date, or the exact RFC 3339 time.
func day(s string) time.Time {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t.Add(12 * time.Hour)
}

// fixture is a hand-built history of seven customers (a–g) over
// Nov 2025 – Mar 2026; the report tests compute every figure from it by hand.
//
//	a: new→reach 12-10, →acquisition 01-05, →conversion 01-20, →retention 02-10;
//	   orders 01-20 (100), 01-27 (50), 02-15 (30)
//	b: new→reach 01-03, →acquisition 01-10, →conversion 03-01 (after the range)
//	c: new→reach 11-01, →conversion 11-02, →at_risk 12-20, →churned 01-15; order 11-02
//	d: new→reach 12-01, →acquisition 12-05, →churned 02-05; orders 01-10 (20), 03-05 (20)
//	e: new→reach 02-14; orders 02-14 (15), 02-25 (15)
//	f: new→reach 01-25; orders 02-02 (40), 02-20 (10)
//	g: new→reach 12-20, →acquisition 01-12; order 01-15 (25)
func fixture(t *testing.T) *store.Store {
	t.Helper()
	db := testdb.New(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := db.Pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	firstOrder := map[string]string{"a": "2026-01-20", "c": "2025-11-02", "d": "2026-01-10", "e": "2026-02-14", "f": "2026-02-02", "g": "2026-01-15"}
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		var fo *time.Time
		if s, ok := firstOrder[id]; ok {
			v := day(s)
			fo = &v
		}
		exec(`INSERT INTO customers (id, email, created_at, first_order_at) VALUES ($1, $1 || '@example.com', '2025-11-01', $2)`, id, fo)
	}
	for _, tr := range []struct{ c, from, to, at string }{
		{"a", "", "reach", "2025-12-10"}, {"a", "reach", "acquisition", "2026-01-05"},
		{"a", "acquisition", "conversion", "2026-01-20"}, {"a", "conversion", "retention", "2026-02-10"},
		{"b", "", "reach", "2026-01-03"}, {"b", "reach", "acquisition", "2026-01-10"}, {"b", "acquisition", "conversion", "2026-03-01"},
		{"c", "", "reach", "2025-11-01"}, {"c", "reach", "conversion", "2025-11-02"},
		{"c", "conversion", "at_risk", "2025-12-20"}, {"c", "at_risk", "churned", "2026-01-15"},
		{"d", "", "reach", "2025-12-01"}, {"d", "reach", "acquisition", "2025-12-05"}, {"d", "acquisition", "churned", "2026-02-05"},
		{"e", "", "reach", "2026-02-14"},
		{"f", "", "reach", "2026-01-25"},
		{"g", "", "reach", "2025-12-20"}, {"g", "reach", "acquisition", "2026-01-12"},
	} {
		var from *string
		if tr.from != "" {
			from = &tr.from
		}
		exec(`INSERT INTO stage_transitions (customer_id, from_stage, to_stage, occurred_at) VALUES ($1, $2, $3, $4)`, tr.c, from, tr.to, day(tr.at))
	}
	event := func(c, typ, at string, props map[string]any) {
		t.Helper()
		exec(`INSERT INTO events (customer_id, type, properties, occurred_at) VALUES ($1, $2, $3, $4)`, c, typ, props, day(at))
	}
	for _, o := range []struct {
		c, at string
		total float64
	}{
		{"a", "2026-01-20", 100}, {"a", "2026-01-27", 50}, {"a", "2026-02-15", 30},
		{"c", "2025-11-02", 10}, {"d", "2026-01-10", 20}, {"d", "2026-03-05", 20},
		{"e", "2026-02-14", 15}, {"e", "2026-02-25", 15}, {"f", "2026-02-02", 40}, {"f", "2026-02-20", 10},
		{"g", "2026-01-15", 25},
	} {
		event(o.c, "order_placed", o.at, map[string]any{"total": o.total})
	}
	// NPS: January 10, 9, 9, 7, 2; February 10, 0, 5; plus two answers
	// that are not scores and are ignored.
	for _, a := range []struct {
		at    string
		score any
	}{{"2026-01-03", 10}, {"2026-01-04", 9}, {"2026-01-05", 9}, {"2026-01-06", 7}, {"2026-01-07", 2},
		{"2026-02-03", 10}, {"2026-02-04", 0}, {"2026-02-05", 5}, {"2026-02-06", "x"}, {"2026-02-07", 11}} {
		event("a", "nps_answered", a.at, map[string]any{"score": a.score})
	}
	// CSAT: January 5, 5, 4, 2; none in February.
	for _, s := range []int{5, 5, 4, 2} {
		event("b", "csat_answered", "2026-01-08", map[string]any{"score": s})
	}
	// Firings, deliveries and coupons of two rules.
	firing := func(c, rule, at string) int64 {
		t.Helper()
		var id int64
		require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, fired_at)
			VALUES ($1, $2, $3, 'v1', $4) RETURNING id`, c, rule, rule+at, day(at)).Scan(&id))
		return id
	}
	delivery := func(c, rule string, firingID int64, channel, status string) {
		exec(`INSERT INTO deliveries (customer_id, firing_id, rule, channel, status, created_at) VALUES ($1, $2, $3, $4, $5, '2026-01-20')`,
			c, firingID, rule, channel, status)
	}
	coupon := func(c string, firingID int64, created, expires string, redeemed *time.Time) {
		exec(`INSERT INTO coupons (code, customer_id, rule, firing_id, kind, value, created_at, expires_at, redeemed_at)
			VALUES ($1, $2, 'first-order-bonus', $3, 'percent', 10, $4, $5, $6)`, "CODE-"+strings.ToUpper(c), c, firingID, day(created), day(expires), redeemed)
	}
	wa, wb, wg := firing("a", "welcome", "2026-01-05"), firing("b", "welcome", "2026-01-10"), firing("g", "welcome", "2026-01-12")
	delivery("a", "welcome", wa, "email", "sent")
	delivery("b", "welcome", wb, "email", "sent")
	delivery("g", "welcome", wg, "email", "suppressed")
	fa, fd, fg := firing("a", "first-order-bonus", "2026-01-20T12:00:01Z"), firing("d", "first-order-bonus", "2026-01-10T12:00:01Z"),
		firing("g", "first-order-bonus", "2026-01-15T12:00:01Z")
	delivery("a", "first-order-bonus", fa, "email", "sent")
	delivery("a", "first-order-bonus", fa, "webhook", "sent")
	delivery("d", "first-order-bonus", fd, "email", "skipped_cap")
	delivery("g", "first-order-bonus", fg, "email", "failed")
	redeemed := day("2026-01-27")
	coupon("a", fa, "2026-01-20", "2026-02-03", &redeemed)
	coupon("d", fd, "2026-01-10", "2026-01-24", nil)
	coupon("g", fg, "2026-01-15", "2026-03-30", nil)
	return store.New(db.Pool)
}

var fixtureParams = report.Params{
	Period: report.PeriodMonth,
	From:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	To:     time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
	Now:    time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC),
	Rules:  []string{"welcome", "first-order-bonus", "never-fired"},
}

func rate(t *testing.T, want float64, got *float64) {
	t.Helper()
	require.NotNil(t, got, "rate is null, want %v", want)
	require.InDelta(t, want, *got, 1e-9)
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := fixture(t)
	rep, err := report.Build(ctx, st, fixtureParams)
	require.NoError(t, err)
	require.Len(t, rep.Periods, 2)
	jan, feb := rep.Periods[0], rep.Periods[1]

	t.Run("Funnel", func(t *testing.T) {
		// At 03-01 (b's conversion that day is after the range): a retention,
		// b and g acquisition, c and d churned, e and f reach.
		want := []report.StageCount{sc("reach", 2), sc("acquisition", 2), sc("conversion", 0), sc("retention", 1),
			sc("loyalty", 0), sc("at_risk", 0), sc("churned", 2)}
		require.Equal(t, want, rep.Funnel)
		// At the end of January: a conversion, b/d/g acquisition, c churned, f reach.
		require.Equal(t, []report.StageCount{sc("reach", 1), sc("acquisition", 3), sc("conversion", 1), sc("retention", 0),
			sc("loyalty", 0), sc("at_risk", 0), sc("churned", 1)}, jan.Stages)
	})
	t.Run("ReachAndAcquisition", func(t *testing.T) {
		require.Equal(t, int64(2), jan.NewCustomers) // b, f
		require.Equal(t, int64(1), feb.NewCustomers) // e
		require.Equal(t, int64(3), jan.Acquired)     // a, b, g
		require.Equal(t, int64(0), feb.Acquired)
		require.Contains(t, feb.Flows, report.FlowCount{From: "acquisition", To: "churned", Transitions: 1, Customers: 1})
	})
	t.Run("ChurnRate", func(t *testing.T) {
		// January: at its start a (reach), c (at_risk), d and g (acquisition)
		// are active; c churns: 1/4.
		require.Equal(t, report.Ratio{Count: 1, Of: 4, Rate: jan.Churn.Rate}, jan.Churn)
		rate(t, 0.25, jan.Churn.Rate)
		// February: a, b, d, f, g active; d churns: 1/5.
		require.Equal(t, int64(5), feb.Churn.Of)
		rate(t, 0.2, feb.Churn.Rate)
	})
	t.Run("ConversionRate", func(t *testing.T) {
		// January, reach→acquisition: b (01-03) and f (01-25) entered reach;
		// b reached acquisition 7 days later: 1/2.
		// acquisition→conversion: a, b, g entered acquisition; only a
		// converted within 30 days (b after 50): 1/3.
		steps := map[string]report.Conversion{}
		for _, c := range jan.Conversion {
			steps[c.From+">"+c.To] = c
		}
		require.Len(t, jan.Conversion, 4)
		c := steps["reach>acquisition"]
		require.Equal(t, [2]int64{2, 1}, [2]int64{c.Entered, c.Converted})
		rate(t, 0.5, c.Rate)
		c = steps["acquisition>conversion"]
		require.Equal(t, [2]int64{3, 1}, [2]int64{c.Entered, c.Converted})
		rate(t, 1.0/3, c.Rate)
		c = steps["retention>loyalty"]
		require.Nil(t, c.Rate, "nobody entered retention in January")
	})
	t.Run("RepeatRate", func(t *testing.T) {
		// January buyers a (2 orders), d, g: 1/3. February a, e (2), f (2): 2/3.
		require.Equal(t, [2]int64{1, 3}, [2]int64{jan.Repeat.Count, jan.Repeat.Of})
		rate(t, 1.0/3, jan.Repeat.Rate)
		rate(t, 2.0/3, feb.Repeat.Rate)
	})
	t.Run("NPS", func(t *testing.T) {
		// January 10, 9, 9, 7, 2: 3 promoters, 1 detractor of 5: 60% − 20% = 40.
		require.Equal(t, int64(5), jan.NPS.Answers)
		rate(t, 40, jan.NPS.Value)
		// February 10, 0, 5 ("x" and 11 ignored): 33.3% − 66.7% = −33.3.
		require.Equal(t, int64(3), feb.NPS.Answers)
		rate(t, -100.0/3, feb.NPS.Value)
	})
	t.Run("CSAT", func(t *testing.T) {
		// January 5, 5, 4, 2: 3 of 4 satisfied = 75%; none in February.
		require.Equal(t, int64(4), jan.CSAT.Answers)
		rate(t, 75, jan.CSAT.Value)
		require.Nil(t, feb.CSAT.Value)
	})
	t.Run("TimeInStage", func(t *testing.T) {
		// Left reach: a 26d, b 7d, g 23d → 23. acquisition: a 15d, d 62d →
		// 38.5. conversion: a 21d. at_risk: c 26d.
		want := []report.StageTime{{Stage: "acquisition", Left: 2, MedianDays: 38.5}, {Stage: "at_risk", Left: 1, MedianDays: 26}, {Stage: "conversion", Left: 1, MedianDays: 21}, {Stage: "reach", Left: 3, MedianDays: 23}}
		require.Equal(t, want, rep.TimeInStage)
	})
	t.Run("CohortCell", func(t *testing.T) {
		// January cohort a, d, g: +1 (Feb) a → 1/3; +2 (Mar, until 03-15) d → 1/3.
		// February cohort e, f: +1 nobody.
		require.Len(t, rep.Cohorts, 2)
		jc := rep.Cohorts[0]
		require.Equal(t, int64(3), jc.Customers)
		require.Equal(t, []int64{1, 1}, jc.Retained)
		require.InDelta(t, 1.0/3, jc.Rates[0], 1e-9)
		require.Equal(t, int64(2), rep.Cohorts[1].Customers)
		require.Equal(t, []float64{0}, rep.Cohorts[1].Rates)
	})
	t.Run("JSONAndCSV", func(t *testing.T) {
		var buf bytes.Buffer
		require.NoError(t, report.WriteJSON(&buf, rep))
		var back report.Lifecycle
		require.NoError(t, json.Unmarshal(buf.Bytes(), &back))
		require.Equal(t, rep.Funnel, back.Funnel)
		buf.Reset()
		require.NoError(t, rep.WriteCSV(&buf))
		rows, err := csv.NewReader(&buf).ReadAll()
		require.NoError(t, err)
		require.Contains(t, rows, []string{"churn", "2026-02-01", "", "rate", "0.2"})
		require.Contains(t, rows, []string{"funnel", "", "churned", "customers", "2"})
		buf.Reset()
		require.NoError(t, rep.WriteTable(&buf))
		require.Contains(t, buf.String(), "25.0% (1/4)")
	})
}

func TestLifecycleInactiveChurn(t *testing.T) {
	t.Parallel()
	st := fixture(t)
	p := fixtureParams
	p.Stages = []string{"reach", "acquisition", "conversion", "retention", "loyalty"}
	p.InactiveWindow = 30 * 24 * time.Hour
	rep, err := report.Build(context.Background(), st, p)
	require.NoError(t, err)
	require.Equal(t, "no order for 30d", rep.ChurnBy)
	jan, feb := rep.Periods[0], rep.Periods[1]
	// Nobody ordered in the 30 days before 01-01 (c's last order is 11-02): 0 of 0.
	require.Equal(t, report.Ratio{}, jan.Churn)
	// Active at 02-01: a, d, g ordered since 01-02. d (01-10, next order
	// 03-05) goes inactive 02-09 and g (01-15) 02-14: 2/3.
	require.Equal(t, [2]int64{2, 3}, [2]int64{feb.Churn.Count, feb.Churn.Of})
	rate(t, 2.0/3, feb.Churn.Rate)
	// Stages outside the list are still counted, after it.
	require.Equal(t, "at_risk", rep.Funnel[5].Stage)
	require.Equal(t, "churned", rep.Funnel[6].Stage)
}

func TestRules(t *testing.T) {
	t.Parallel()
	st := fixture(t)
	rep, err := report.BuildRules(context.Background(), st, fixtureParams)
	require.NoError(t, err)
	require.Len(t, rep.Rules, 3)
	welcome, bonus, never := rep.Rules[0], rep.Rules[1], rep.Rules[2]
	require.Equal(t, "never-fired", never.Rule)
	require.Equal(t, report.RuleStat{Rule: "never-fired"}, *never)

	require.Equal(t, int64(3), welcome.Firings)
	require.Equal(t, report.DeliveryCounts{Sent: 2, Suppressed: 1}, welcome.Emails)
	// g's order on 01-15 came 3 days after its welcome: attributed (25.00).
	require.Equal(t, int64(1), welcome.AttributedOrders)
	require.InDelta(t, 25.0, welcome.AttributedRevenue, 1e-9)

	require.Equal(t, int64(3), bonus.Firings)
	require.Equal(t, report.DeliveryCounts{Sent: 1, Capped: 1, Failed: 1}, bonus.Emails)
	require.Equal(t, report.DeliveryCounts{Sent: 1}, bonus.Webhooks)
	// a redeemed, d expired 01-24, g's runs to 03-30: 1 of 3 redeemed.
	require.Equal(t, report.CouponCounts{Issued: 3, Redeemed: 1, Expired: 1}, bonus.Coupons)
	rate(t, 1.0/3, bonus.RedemptionRate)
	// Only a's 01-27 order is within 7 days after a bonus firing (01-20);
	// orders placed before their own firing do not count.
	require.Equal(t, int64(1), bonus.AttributedOrders)
	require.InDelta(t, 50.0, bonus.AttributedRevenue, 1e-9)

	var buf bytes.Buffer
	require.NoError(t, rep.WriteCSV(&buf))
	require.True(t, strings.HasPrefix(buf.String(), "rule,firings,emails_sent"), buf.String())
	require.Contains(t, buf.String(), "first-order-bonus,3,1,0,1,1,1,3,1,1,33.3%,1,50.00")
}

func TestParams(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		in       report.Params
		from, to time.Time
		wantErr  string
	}{
		{name: "DefaultMonths", in: report.Params{Now: now},
			from: time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC), to: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{name: "Weeks", in: report.Params{Now: now, Period: "week"}, // 2026-03-15 is a Sunday
			from: time.Date(2025, 12, 22, 0, 0, 0, 0, time.UTC), to: time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC)},
		{name: "Quarters", in: report.Params{Now: now, Period: "quarter"},
			from: time.Date(2023, 4, 1, 0, 0, 0, 0, time.UTC), to: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{name: "BadPeriod", in: report.Params{Now: now, Period: "year"}, wantErr: `period "year": use week, month or quarter`},
		{name: "Backwards", in: report.Params{Now: now, From: now, To: now.AddDate(0, 0, -1)}, wantErr: "is not before to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.in.Normalize()
			if tc.wantErr != "" {
				require.ErrorIs(t, err, report.ErrBadParams)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.from, got.From)
			require.Equal(t, tc.to, got.To)
		})
	}
}

func TestCompareGroups(t *testing.T) {
	t.Parallel()
	// By hand: treated 600 of 5000 = 0.12, control 50 of 500 = 0.10.
	// Lift = (0.12 − 0.10) / 0.10 = 0.2.
	// Pooled p = 650/5500 = 0.118182; p(1−p) = 0.104215;
	// 1/5000 + 1/500 = 0.0022; SE = √(0.104215 × 0.0022) = 0.015142;
	// z = 0.02 / 0.015142 = 1.3209; from the normal table Φ(1.32) = 0.9066,
	// so the two-sided p-value is 2 × (1 − 0.9066) ≈ 0.187.
	l := report.CompareGroups(5000, 600, 500, 50)
	require.NotNil(t, l.Lift)
	require.InDelta(t, 0.2, *l.Lift, 1e-9)
	require.InDelta(t, 1.3209, l.Z, 1e-4)
	require.InDelta(t, 0.187, l.PValue, 1e-3)
	require.False(t, l.TooFew)

	small := report.CompareGroups(400, 40, 100, 5)
	require.True(t, small.TooFew)
	require.Contains(t, small.Note, "too few customers")

	none := report.CompareGroups(1000, 0, 1000, 0)
	require.Nil(t, none.Lift)
	require.Zero(t, none.Z)
	require.False(t, math.IsNaN(none.PValue))
}

func sc(stage string, n int64) report.StageCount {
	return report.StageCount{Stage: stage, Customers: n}
}

// TestMetricsDoc checks that docs/metrics.md shows every report query as
// store/sql/reports.sql has it.
func TestMetricsDoc(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	require.NoError(t, err)
	src, err := os.ReadFile(filepath.Join("..", "store", "sql", "reports.sql"))
	require.NoError(t, err)
	for _, block := range strings.Split(string(src), "-- name: ")[1:] {
		name, body, _ := strings.Cut(block, "\n")
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
			if len(lines) == 0 && strings.HasPrefix(l, "--") {
				continue
			}
			lines = append(lines, l)
		}
		if name == "ReportEventsCount" || name == "ReportSettings" {
			continue
		}
		require.Contains(t, string(doc), "-- "+name+"\n"+strings.TrimSpace(strings.Join(lines, "\n"))+"\n```",
			"docs/metrics.md shows %s as in reports.sql", name)
	}
}

// TestRuleHoldout builds a rule that fired for 10 treated and 5 held-out
// customers; 4 treated and 1 held-out customer ordered within the 7-day
// window after the firing. By hand: rates 0.4 and 0.2, lift (0.4 − 0.2) ÷
// 0.2 = 1; pooled p = 5/15, se = √(1/3 · 2/3 · (1/10 + 1/5)) = 0.258199,
// z = 0.2 ÷ se = 0.774597, p-value = erfc(z/√2) = 0.438578; both groups are
// under 500 customers.
func TestRuleHoldout(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := db.Pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	fired := day("2026-01-10")
	for i := range 15 {
		id := string(rune('a' + i))
		held := i >= 10
		exec(`INSERT INTO customers (id, stage, created_at) VALUES ($1, 'reach', $2)`, id, fired.Add(-24*time.Hour))
		exec(`INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, fired_at, holdout) VALUES ($1, 'win-back', 'w1', 'v1', $2, $3)`, id, fired, held)
		// Converted: treated a–d, held-out k. e orders after the window, f
		// before the firing: neither counts.
		switch id {
		case "a", "b", "c", "d", "k":
			exec(`INSERT INTO events (customer_id, type, occurred_at, properties) VALUES ($1, 'order_placed', $2, '{"total": 10}')`, id, fired.Add(3*24*time.Hour))
		case "e":
			exec(`INSERT INTO events (customer_id, type, occurred_at) VALUES ($1, 'order_placed', $2)`, id, fired.Add(8*24*time.Hour))
		case "f":
			exec(`INSERT INTO events (customer_id, type, occurred_at) VALUES ($1, 'order_placed', $2)`, id, fired.Add(-time.Hour))
		}
	}
	exec(`INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version, fired_at) VALUES ('a', 'welcome', 'e1', 'v1', $1)`, fired)

	p := fixtureParams
	p.Rules = []string{"win-back", "welcome"}
	rep, err := report.BuildRules(ctx, store.New(db.Pool), p)
	require.NoError(t, err)
	wb, welcome := rep.Rules[0], rep.Rules[1]
	require.Nil(t, welcome.Holdout, "a rule without held-out firings has no comparison")
	require.NotNil(t, wb.Holdout)
	l := wb.Holdout
	require.Equal(t, report.Group{Customers: 10, Converted: 4, Rate: 0.4}, l.Treated)
	require.Equal(t, report.Group{Customers: 5, Converted: 1, Rate: 0.2}, l.Control)
	require.NotNil(t, l.Lift)
	require.InDelta(t, 1.0, *l.Lift, 1e-9)
	require.InDelta(t, 0.774597, l.Z, 1e-6)
	require.InDelta(t, 0.438578, l.PValue, 1e-6)
	require.True(t, l.TooFew)
}
