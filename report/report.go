// Package report defines ciclo's lifecycle metrics — stage counts and
// flows, reach, conversion, repeat purchase, churn, time in stage, cohort
// retention, NPS, CSAT and per-rule outcomes — and formats them as a table,
// JSON or CSV. Every figure is computed in SQL by store's report queries
// from stage_transitions, events, rule_firings, coupons and deliveries;
// docs/metrics.md gives each definition with its SQL. `ciclo report`,
// GET /v1/reports/{name} and the dashboard all call Build and BuildRules.
package report

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// Periods a report is bucketed by.
const (
	PeriodWeek    = "week"
	PeriodMonth   = "month"
	PeriodQuarter = "quarter"
)

// Defaults for Params.
const (
	PeriodDefault = PeriodMonth
	// PeriodsDefault is how many periods a report without From covers.
	PeriodsDefault = 12
	// ConversionWindowDefault is how long after entering a stage reaching
	// the next one counts as converting.
	ConversionWindowDefault = 30 * 24 * time.Hour
	// InactiveWindowDefault is how long without an order makes a customer
	// churned, for rule files without a churned stage.
	InactiveWindowDefault = 120 * 24 * time.Hour
	// AttributionWindowDefault is how long after a firing an order counts
	// for the rule.
	AttributionWindowDefault = 7 * 24 * time.Hour
	// ChurnedStage is the stage whose entries are churn.
	ChurnedStage = "churned"
	// AtRiskStage, like ChurnedStage, is outside the funnel.
	AtRiskStage     = "at_risk"
	NPSEventDefault = "nps_answered"
	// CSATEventDefault is the event type of CSAT answers (score 1–5).
	CSATEventDefault = "csat_answered"
)

// DefaultStages are the stages of rules.example.yaml, used when a report is
// built without a rule set.
var DefaultStages = []string{"reach", "acquisition", "conversion", "retention", "loyalty", AtRiskStage, ChurnedStage}

// ErrBadParams is wrapped by every Params validation error.
var ErrBadParams = errors.New("bad report parameters")

// Params says what a report covers.
type Params struct {
	// Period buckets the figures: PeriodWeek (from Monday), PeriodMonth or
	// PeriodQuarter, in UTC. Default PeriodDefault.
	Period string
	// From and To bound the report: [From, To). Default: To is the end of
	// the period containing Now and From PeriodsDefault periods earlier.
	// From alone runs to the end of Now's period.
	From, To time.Time
	// Now is the report's clock. Default time.Now().
	Now time.Time
	// Stages are the lifecycle stages in funnel order (the rule set's).
	// Default DefaultStages. Stages found in the data but not listed come
	// after them, alphabetically.
	Stages []string
	// OrderEvents are the event types that are orders. Default order_placed.
	OrderEvents []string
	// ConversionWindow: default ConversionWindowDefault.
	ConversionWindow time.Duration
	// InactiveWindow: default InactiveWindowDefault. Used only when Stages
	// has no ChurnedStage.
	InactiveWindow time.Duration
	// AttributionWindow: default AttributionWindowDefault.
	AttributionWindow time.Duration
	// Rules are the rule set's rule names, listed in the rules report even
	// without activity. Optional.
	Rules []string
}

// Normalize fills defaults and validates. Errors wrap ErrBadParams and say
// how to fix the input.
func (p Params) Normalize() (Params, error) {
	if p.Period == "" {
		p.Period = PeriodDefault
	}
	if p.Period != PeriodWeek && p.Period != PeriodMonth && p.Period != PeriodQuarter {
		return p, fmt.Errorf("%w: period %q: use week, month or quarter", ErrBadParams, p.Period)
	}
	if p.Now.IsZero() {
		p.Now = time.Now()
	}
	p.Now = p.Now.UTC()
	if p.To.IsZero() {
		p.To = Next(p.Period, Trunc(p.Period, p.Now))
	}
	if p.From.IsZero() {
		p.From = Trunc(p.Period, p.To.Add(-time.Nanosecond))
		for range PeriodsDefault - 1 {
			p.From = Prev(p.Period, p.From)
		}
	}
	p.From, p.To = p.From.UTC(), p.To.UTC()
	if !p.From.Before(p.To) {
		return p, fmt.Errorf("%w: from %s is not before to %s", ErrBadParams, p.From.Format(time.DateOnly), p.To.Format(time.DateOnly))
	}
	if len(p.Stages) == 0 {
		p.Stages = DefaultStages
	}
	if len(p.OrderEvents) == 0 {
		p.OrderEvents = []string{"order_placed"}
	}
	for _, w := range []*time.Duration{&p.ConversionWindow, &p.InactiveWindow, &p.AttributionWindow} {
		if *w < 0 {
			return p, fmt.Errorf("%w: negative window %s", ErrBadParams, *w)
		}
	}
	if p.ConversionWindow == 0 {
		p.ConversionWindow = ConversionWindowDefault
	}
	if p.InactiveWindow == 0 {
		p.InactiveWindow = InactiveWindowDefault
	}
	if p.AttributionWindow == 0 {
		p.AttributionWindow = AttributionWindowDefault
	}
	return p, nil
}

// Trunc returns the start of the period (UTC) containing t.
func Trunc(period string, t time.Time) time.Time {
	t = t.UTC()
	y, m, d := t.Date()
	switch period {
	case PeriodWeek:
		day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	case PeriodQuarter:
		return time.Date(y, m-(m-1)%3, 1, 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	}
}

// Next returns the start of the period after the one starting at start.
func Next(period string, start time.Time) time.Time {
	switch period {
	case PeriodWeek:
		return start.AddDate(0, 0, 7)
	case PeriodQuarter:
		return start.AddDate(0, 3, 0)
	default:
		return start.AddDate(0, 1, 0)
	}
}

// Prev returns the start of the period before the one starting at start.
func Prev(period string, start time.Time) time.Time {
	switch period {
	case PeriodWeek:
		return start.AddDate(0, 0, -7)
	case PeriodQuarter:
		return start.AddDate(0, -3, 0)
	default:
		return start.AddDate(0, -1, 0)
	}
}

// Lifecycle is the lifecycle report: `ciclo report`, GET
// /v1/reports/lifecycle and the dashboard.
type Lifecycle struct {
	Period string    `json:"period"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Now    time.Time `json:"generated_at"`
	// Funnel is the customers per stage at the end of the report (or now).
	Funnel []StageCount `json:"funnel"`
	// ChurnBy says how churn is counted: "stage churned" or "no order for 120d".
	ChurnBy              string        `json:"churn_by"`
	ConversionWindowDays float64       `json:"conversion_window_days"`
	Periods              []*PeriodStat `json:"periods"`
	// TimeInStage covers the customers who left a stage during the report.
	TimeInStage []StageTime `json:"time_in_stage"`
	// Cohorts are the customers by month of their first order in the report.
	Cohorts []*Cohort `json:"cohorts"`
}

// StageCount is the customers in a stage.
type StageCount struct {
	Stage     string `json:"stage"`
	Customers int64  `json:"customers"`
}

// PeriodStat is every per-period figure of one period.
type PeriodStat struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Stages are the customers per stage at the period's end.
	Stages []StageCount `json:"stages"`
	// NewCustomers is reach: customers first seen in the period.
	NewCustomers int64 `json:"new_customers"`
	// Acquired is the customers who entered the acquisition stage (the
	// funnel's second stage).
	Acquired   int64        `json:"acquired"`
	Flows      []FlowCount  `json:"flows"`
	Conversion []Conversion `json:"conversion"`
	Repeat     Ratio        `json:"repeat_purchase"`
	Churn      Ratio        `json:"churn"`
	NPS        Score        `json:"nps"`
	CSAT       Score        `json:"csat"`
	Points     Points       `json:"points"`
}

// Points is the loyalty points ledger in a period: points granted, spent
// (redeemed, reversed after a refund, adjusted down) and expired, and the
// liability, the points outstanding (the sum of all balances, pending
// points included, a debt counting against it) at the period's end.
type Points struct {
	Granted   int64 `json:"granted"`
	Spent     int64 `json:"spent"`
	Expired   int64 `json:"expired"`
	Liability int64 `json:"liability"`
}

// FlowCount is the stage changes from → to in a period.
type FlowCount struct {
	From        string `json:"from"` // "" for new customers
	To          string `json:"to"`
	Transitions int64  `json:"transitions"`
	Customers   int64  `json:"customers"`
}

// Conversion is one funnel step in a period.
type Conversion struct {
	From      string   `json:"from"`
	To        string   `json:"to"`
	Entered   int64    `json:"entered"`
	Converted int64    `json:"converted"`
	Rate      *float64 `json:"rate"` // null when nobody entered
}

// Ratio is a share: Count of Of; Rate is null when Of is 0.
type Ratio struct {
	Count int64    `json:"count"`
	Of    int64    `json:"of"`
	Rate  *float64 `json:"rate"`
}

// Score is NPS or CSAT in a period: Value is in percent (NPS −100..100,
// CSAT 0..100), null without answers.
type Score struct {
	Value   *float64 `json:"value"`
	High    int64    `json:"high"` // promoters (9–10) or satisfied (4–5)
	Low     int64    `json:"low"`  // detractors (0–6); for CSAT 1–3
	Answers int64    `json:"answers"`
}

// StageTime is the median time in a stage of the customers who left it.
type StageTime struct {
	Stage      string  `json:"stage"`
	Left       int64   `json:"left"`
	MedianDays float64 `json:"median_days"`
}

// Cohort is the customers whose first order is in one month and the share
// of them with an order k months later (Retained[k-1], Rates[k-1]).
type Cohort struct {
	Month     time.Time `json:"month"`
	Customers int64     `json:"customers"`
	Retained  []int64   `json:"retained"`
	Rates     []float64 `json:"rates"`
}

func ratio(n, of int64) Ratio {
	r := Ratio{Count: n, Of: of}
	if of > 0 {
		v := float64(n) / float64(of)
		r.Rate = &v
	}
	return r
}

// funnelStages are the stages in funnel order: all but at_risk and churned.
func funnelStages(stages []string) []string {
	var out []string
	for _, s := range stages {
		if s != AtRiskStage && s != ChurnedStage {
			out = append(out, s)
		}
	}
	return out
}

// periodStarts lists the periods of [from, to), each clipped to the range.
func periodStarts(period string, from, to time.Time) (starts, ends []time.Time) {
	for s := Trunc(period, from); s.Before(to); s = Next(period, s) {
		start, end := s, Next(period, s)
		if start.Before(from) {
			start = from
		}
		if end.After(to) {
			end = to
		}
		starts, ends = append(starts, start), append(ends, end)
	}
	return starts, ends
}

// Build computes the lifecycle report. Run it on a store in one read-only
// REPEATABLE READ transaction so that every figure sees the same snapshot.
func Build(ctx context.Context, st *store.Store, params Params) (*Lifecycle, error) {
	p, err := params.Normalize()
	if err != nil {
		return nil, err
	}
	if err := st.ReportSettings(ctx); err != nil {
		return nil, err
	}
	rep := &Lifecycle{Period: p.Period, From: p.From, To: p.To, Now: p.Now,
		ConversionWindowDays: p.ConversionWindow.Hours() / 24}
	starts, ends := periodStarts(p.Period, p.From, p.To)
	byStart := map[time.Time]*PeriodStat{}
	for i := range starts {
		ps := &PeriodStat{Start: starts[i], End: ends[i]}
		rep.Periods = append(rep.Periods, ps)
		byStart[Trunc(p.Period, starts[i])] = ps
	}
	at := func(t time.Time) *PeriodStat { return byStart[Trunc(p.Period, t)] }

	// Stage counts: running sums of entries minus exits.
	flows, err := st.ReportStageFlows(ctx, p.Period, p.From, p.To)
	if err != nil {
		return nil, err
	}
	stages := slices.Clone(p.Stages)
	for _, f := range flows {
		for _, s := range []string{f.From, f.To} {
			if s != "" && !slices.Contains(stages, s) {
				stages = append(stages, s)
			}
		}
	}
	slices.Sort(stages[len(p.Stages):])
	counts := map[string]int64{}
	apply := func(f store.Flow) {
		counts[f.To] += f.Transitions
		if f.From != "" {
			counts[f.From] -= f.Transitions
		}
	}
	atStart := map[*PeriodStat]map[string]int64{}
	snapshot := func() []StageCount {
		out := make([]StageCount, len(stages))
		for i, s := range stages {
			out[i] = StageCount{Stage: s, Customers: counts[s]}
		}
		return out
	}
	k := 0
	for ; k < len(flows) && flows[k].Period == nil; k++ {
		apply(flows[k])
	}
	for _, ps := range rep.Periods {
		atStart[ps] = maps(counts)
		for ; k < len(flows) && at(*flows[k].Period) == ps; k++ {
			apply(flows[k])
		}
		ps.Stages = snapshot()
	}
	rep.Funnel = snapshot()

	// Flows, reach, acquisition and churn by stage.
	funnel := funnelStages(stages)
	acquisition := ""
	if len(funnel) > 1 {
		acquisition = funnel[1]
	}
	churnedIn := map[*PeriodStat]int64{}
	for _, f := range flows {
		if f.Period == nil {
			continue
		}
		ps := at(*f.Period)
		if ps == nil {
			continue
		}
		ps.Flows = append(ps.Flows, FlowCount{From: f.From, To: f.To, Transitions: f.Transitions, Customers: f.Customers})
		if f.From == "" {
			ps.NewCustomers += f.Customers
		}
		if f.To == acquisition && acquisition != "" {
			ps.Acquired += f.Customers
		}
		if f.To == ChurnedStage {
			churnedIn[ps] += f.Customers
		}
	}

	if slices.Contains(p.Stages, ChurnedStage) {
		rep.ChurnBy = "entered stage " + ChurnedStage
		for _, ps := range rep.Periods {
			var active int64
			for s, n := range atStart[ps] {
				if s != ChurnedStage {
					active += n
				}
			}
			ps.Churn = ratio(churnedIn[ps], active)
		}
	} else {
		rep.ChurnBy = fmt.Sprintf("no order for %s", formatDays(p.InactiveWindow))
		rows, err := st.ReportInactiveChurn(ctx, p.To, p.OrderEvents, p.InactiveWindow, p.Now, starts, ends)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			if ps := at(r.Period); ps != nil {
				ps.Churn = ratio(r.Churned, r.ActiveAtStart)
			}
		}
	}

	// Conversion per funnel step.
	var steps [][2]string
	for i := 0; i+1 < len(funnel); i++ {
		steps = append(steps, [2]string{funnel[i], funnel[i+1]})
	}
	conv, err := st.ReportConversion(ctx, p.Period, p.From, p.To, steps, p.ConversionWindow)
	if err != nil {
		return nil, err
	}
	for _, ps := range rep.Periods {
		for _, s := range steps {
			ps.Conversion = append(ps.Conversion, Conversion{From: s[0], To: s[1]})
		}
	}
	for _, c := range conv {
		ps := at(c.Period)
		if ps == nil {
			continue
		}
		for i := range ps.Conversion {
			if cv := &ps.Conversion[i]; cv.From == c.From && cv.To == c.To {
				cv.Entered, cv.Converted = c.Entered, c.Converted
				cv.Rate = ratio(c.Converted, c.Entered).Rate
			}
		}
	}

	repeat, err := st.ReportRepeat(ctx, p.Period, p.From, p.To, p.OrderEvents)
	if err != nil {
		return nil, err
	}
	for _, r := range repeat {
		if ps := at(r.Period); ps != nil {
			ps.Repeat = ratio(r.Repeat, r.Buyers)
		}
	}

	scores, err := st.ReportScores(ctx, p.Period, p.From, p.To, []store.Survey{
		{Event: NPSEventDefault, Lo: 0, Hi: 10, High: 9, Low: 6},
		{Event: CSATEventDefault, Lo: 1, Hi: 5, High: 4, Low: 3},
	})
	if err != nil {
		return nil, err
	}
	for _, s := range scores {
		ps := at(s.Period)
		if ps == nil {
			continue
		}
		sc := Score{High: s.High, Low: s.Low, Answers: s.Answers}
		switch s.Event {
		case NPSEventDefault:
			v := 100 * float64(s.High-s.Low) / float64(s.Answers)
			sc.Value = &v
			ps.NPS = sc
		case CSATEventDefault:
			v := 100 * float64(s.High) / float64(s.Answers)
			sc.Value = &v
			ps.CSAT = sc
		}
	}

	points, err := st.ReportPoints(ctx, p.Period, p.From, p.To)
	if err != nil {
		return nil, err
	}
	for _, d := range points {
		if d.Period == nil {
			continue
		}
		if ps := at(*d.Period); ps != nil {
			ps.Points = Points{Granted: d.Granted, Spent: d.Spent, Expired: d.Expired}
		}
	}
	// The liability at each period's end, periods without entries included.
	var liability int64
	next := 0
	for _, ps := range rep.Periods {
		for ; next < len(points) && (points[next].Period == nil || points[next].Period.Before(ps.End)); next++ {
			liability += points[next].Net
		}
		ps.Points.Liability = liability
	}

	times, err := st.ReportTimeInStage(ctx, p.From, p.To)
	if err != nil {
		return nil, err
	}
	for _, t := range times {
		rep.TimeInStage = append(rep.TimeInStage, StageTime{Stage: t.Stage, Left: t.Left, MedianDays: t.MedianSeconds / 86400})
	}

	cohorts, err := st.ReportCohorts(ctx, Trunc(PeriodMonth, p.From), p.To, p.OrderEvents, p.Now)
	if err != nil {
		return nil, err
	}
	byMonth := map[time.Time]*Cohort{}
	for _, c := range cohorts {
		if c.K == 0 {
			co := &Cohort{Month: c.Cohort.UTC(), Customers: c.Customers}
			// Cells up to Now's month: later months have not happened yet.
			for m := Next(PeriodMonth, co.Month); !m.After(p.Now); m = Next(PeriodMonth, m) {
				co.Retained, co.Rates = append(co.Retained, 0), append(co.Rates, 0)
			}
			byMonth[co.Month] = co
			rep.Cohorts = append(rep.Cohorts, co)
		}
	}
	for _, c := range cohorts {
		co := byMonth[c.Cohort.UTC()]
		if c.K == 0 || co == nil || c.K > len(co.Retained) {
			continue
		}
		co.Retained[c.K-1] = c.Customers
		co.Rates[c.K-1] = float64(c.Customers) / float64(co.Customers)
	}
	return rep, nil
}

func maps(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// formatDays writes a window in days when it is a whole number of them.
func formatDays(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// RollupConfig is what the report rollups are folded for: the default
// windows and order events, which `ciclo report`, the API and the dashboard
// use.
func RollupConfig() store.RollupConfig {
	p, _ := Params{Now: time.Unix(0, 0)}.Normalize()
	return store.RollupConfig{ConversionWindow: p.ConversionWindow, AttributionWindow: p.AttributionWindow, OrderTypes: p.OrderEvents,
		ScoreTypes: []string{NPSEventDefault, CSATEventDefault}}
}

// WithRuleSet returns p with the rule set's stages and rule names; nil
// leaves p as it is.
func (p Params) WithRuleSet(rs *rules.RuleSet) Params {
	if rs == nil {
		return p
	}
	p.Stages = slices.Clone(rs.Stages)
	p.Rules = nil
	for _, r := range rs.Rules {
		p.Rules = append(p.Rules, r.Name)
	}
	return p
}

// ParseParams reads a report's period and range as the CLI flags and the
// API's query parameters give them: from and to are YYYY-MM-DD days, to
// included, either may be "". Errors wrap ErrBadParams and name the input.
func ParseParams(period, from, to string, now time.Time) (Params, error) {
	p := Params{Period: period, Now: now}
	day := func(name, s string) (time.Time, error) {
		if s == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: %s %q: want a date as YYYY-MM-DD, e.g. 2026-01-31", ErrBadParams, name, s)
		}
		return t, nil
	}
	var err error
	if p.From, err = day("from", from); err != nil {
		return p, err
	}
	if p.To, err = day("to", to); err != nil {
		return p, err
	}
	if !p.To.IsZero() {
		p.To = p.To.AddDate(0, 0, 1) // to is the last day included
	}
	n, err := p.Normalize()
	if err != nil {
		return p, err
	}
	if !p.From.IsZero() && p.To.IsZero() {
		p.To = n.To // from alone runs to the end of the current period
	}
	return p, nil
}
