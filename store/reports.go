package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// The report queries aggregate in Postgres: each returns at most one row
// per period and stage (or rule, or cohort month), so what they hold in
// memory never grows with the number of customers or events. Periods are
// "week", "month" or "quarter" buckets in UTC; ranges are [from, to).

// Flow counts the stage changes from one stage to another in a period;
// Period is nil for all the changes before the report's range.
type Flow struct {
	Period      *time.Time
	From, To    string // From is "" for a new customer
	Transitions int64
	Customers   int64 // distinct customers; 0 before the range
}

// ConversionCount is one funnel step's conversion in a period.
type ConversionCount struct {
	Period    time.Time
	From, To  string
	Entered   int64 // customers who entered From in the period
	Converted int64 // of those, who entered To within the window
}

// RepeatCount is one period's buyers.
type RepeatCount struct {
	Period         time.Time
	Repeat, Buyers int64 // with ≥ 2 orders, with ≥ 1 order
}

// InactiveChurn is one period's churn by inactivity.
type InactiveChurn struct {
	Period        time.Time
	Churned       int64 // went inactive in the period
	ActiveAtStart int64 // with an order in the window before the period
}

// StageTime is how long the customers who left a stage had been in it.
type StageTime struct {
	Stage         string
	Left          int64
	MedianSeconds float64
}

// CohortCount is a cohort's size (K 0) or the customers of the cohort with
// an order in its K-th month after the first-order month.
type CohortCount struct {
	Cohort    time.Time
	K         int
	Customers int64
}

// Survey says which events are a survey's answers and how their scores
// count.
type Survey struct {
	Event     string  // event type of the answers
	Lo, Hi    float64 // valid scores, inclusive
	High, Low float64 // at least High: promoter or satisfied; at most Low: detractor
}

// ScoreCount is one period's answers to one survey.
type ScoreCount struct {
	Period    time.Time
	Event     string
	High, Low int64 // promoters or satisfied; detractors
	Answers   int64
}

// RuleCount is a per-rule count.
type RuleCount struct {
	Rule string
	N    int64
}

// RuleDeliveryCount counts one rule's deliveries on a channel with a status.
type RuleDeliveryCount struct {
	Rule, Channel, Status string
	N                     int64
}

// RuleCouponCount is one rule's coupons.
type RuleCouponCount struct {
	Rule                      string
	Issued, Redeemed, Expired int64
}

// RuleRevenue is the orders attributed to one rule and their total.
type RuleRevenue struct {
	Rule    string
	Orders  int64
	Revenue float64 // currency units
}

// PointsDelta is the points ledger's movement in one period (Period nil:
// everything before the report's range): points granted, spent
// (redeemed, reversed, adjusted down) and expired, and the net change.
type PointsDelta struct {
	Period                  *time.Time
	Granted, Spent, Expired int64
	Net                     int64
}

// ReportPoints returns the points granted, spent and expired per period
// over [from, to), after one row for everything before from.
func (s *Store) ReportPoints(ctx context.Context, period string, from, to time.Time) ([]PointsDelta, error) {
	return reportRows(ctx, s, "ReportPoints", func(r pgx.Rows, d *PointsDelta) error {
		return r.Scan(&d.Period, &d.Granted, &d.Spent, &d.Expired, &d.Net)
	}, period, from, to)
}

// ReportStageFlows returns the stage changes before to: first those before
// from (Period nil), then those of each period over [from, to). Running
// sums of entries minus exits give the customers per stage.
func (s *Store) ReportStageFlows(ctx context.Context, period string, from, to time.Time) ([]Flow, error) {
	r, err := s.rollups(ctx)
	if err != nil {
		return nil, err
	}
	if r != nil {
		return s.rollupStageFlows(ctx, r, period, from, to)
	}
	return reportRows(ctx, s, "ReportStageFlows", func(r pgx.Rows, f *Flow) error {
		return r.Scan(&f.Period, &f.From, &f.To, &f.Transitions, &f.Customers)
	}, period, from, to)
}

// ReportConversion returns, per period over [from, to) and step
// steps[i][0] → steps[i][1], the customers who entered the first stage and
// how many of them entered the second within window.
func (s *Store) ReportConversion(ctx context.Context, period string, from, to time.Time, steps [][2]string, window time.Duration) ([]ConversionCount, error) {
	a, b := make([]string, len(steps)), make([]string, len(steps))
	for i, st := range steps {
		a[i], b[i] = st[0], st[1]
	}
	r, err := s.rollups(ctx)
	if err != nil {
		return nil, err
	}
	if r != nil && r.convMs == window.Milliseconds() {
		return s.rollupConversion(ctx, r, period, from, to, a, b, window)
	}
	return reportRows(ctx, s, "ReportConversion", func(r pgx.Rows, c *ConversionCount) error {
		return r.Scan(&c.Period, &c.From, &c.To, &c.Entered, &c.Converted)
	}, period, from, to, a, b, window.Milliseconds())
}

// ReportRepeat returns the buyers and repeat buyers per period over [from, to).
func (s *Store) ReportRepeat(ctx context.Context, period string, from, to time.Time, orderTypes []string) ([]RepeatCount, error) {
	r, err := s.rollups(ctx)
	if err != nil {
		return nil, err
	}
	if r != nil && slices.Equal(r.orderTypes, orderTypes) {
		return s.rollupRepeat(ctx, r, period, from, to, orderTypes)
	}
	return reportRows(ctx, s, "ReportRepeat", func(r pgx.Rows, c *RepeatCount) error {
		return r.Scan(&c.Period, &c.Repeat, &c.Buyers)
	}, period, from, to, orderTypes)
}

// ReportInactiveChurn returns churn by inactivity for the periods
// [starts[i], ends[i]); customers go inactive window after an order not
// followed by another, and not after now.
func (s *Store) ReportInactiveChurn(ctx context.Context, to time.Time, orderTypes []string, window time.Duration, now time.Time, starts, ends []time.Time) ([]InactiveChurn, error) {
	return reportRows(ctx, s, "ReportInactiveChurn", func(r pgx.Rows, c *InactiveChurn) error {
		return r.Scan(&c.Period, &c.Churned, &c.ActiveAtStart)
	}, to, orderTypes, window.Milliseconds(), now, starts, ends)
}

// ReportTimeInStage returns, per stage left in [from, to), the median time
// spent in it.
func (s *Store) ReportTimeInStage(ctx context.Context, from, to time.Time) ([]StageTime, error) {
	r, err := s.rollups(ctx)
	if err != nil {
		return nil, err
	}
	if r != nil {
		return reportRows(ctx, s, "ReportTimeInStageRollup", func(r pgx.Rows, t *StageTime) error {
			return r.Scan(&t.Stage, &t.Left, &t.MedianSeconds)
		}, from, to)
	}
	return reportRows(ctx, s, "ReportTimeInStage", func(r pgx.Rows, t *StageTime) error {
		return r.Scan(&t.Stage, &t.Left, &t.MedianSeconds)
	}, from, to)
}

// ReportCohorts returns the cohorts of customers whose first order is in
// [from, to): their sizes (K 0) and, for K ≥ 1, the customers with an
// order before now in the K-th month after the first-order month.
func (s *Store) ReportCohorts(ctx context.Context, from, to time.Time, orderTypes []string, now time.Time) ([]CohortCount, error) {
	sizes, err := reportRows(ctx, s, "ReportCohortSizes", func(r pgx.Rows, c *CohortCount) error {
		return r.Scan(&c.Cohort, &c.Customers)
	}, from, to)
	if err != nil {
		return nil, err
	}
	cells, err := reportRows(ctx, s, "ReportCohortCells", func(r pgx.Rows, c *CohortCount) error {
		return r.Scan(&c.Cohort, &c.K, &c.Customers)
	}, from, to, orderTypes, now)
	if err != nil {
		return nil, err
	}
	return append(sizes, cells...), nil
}

// ReportScores returns, per period over [from, to) and survey, the
// answers whose score is a number in [Lo, Hi]: how many are ≥ High, how
// many ≤ Low, and all of them.
func (s *Store) ReportScores(ctx context.Context, period string, from, to time.Time, surveys []Survey) ([]ScoreCount, error) {
	n := len(surveys)
	events, lo, hi, high, low := make([]string, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i, sv := range surveys {
		events[i], lo[i], hi[i], high[i], low[i] = sv.Event, sv.Lo, sv.Hi, sv.High, sv.Low
	}
	r, err := s.rollups(ctx)
	if err != nil {
		return nil, err
	}
	if r != nil && !slices.ContainsFunc(events, func(e string) bool { return !slices.Contains(r.scoreTypes, e) }) {
		return s.rollupScores(ctx, r, period, from, to, events, lo, hi, high, low)
	}
	return reportRows(ctx, s, "ReportScores", func(r pgx.Rows, c *ScoreCount) error {
		return r.Scan(&c.Period, &c.Event, &c.High, &c.Low, &c.Answers)
	}, period, from, to, events, lo, hi, high, low)
}

// ReportRuleFirings returns the firings per rule in [from, to).
func (s *Store) ReportRuleFirings(ctx context.Context, from, to time.Time) ([]RuleCount, error) {
	return reportRows(ctx, s, "ReportRuleFirings", func(r pgx.Rows, c *RuleCount) error {
		return r.Scan(&c.Rule, &c.N)
	}, from, to)
}

// ReportRuleDeliveries returns the deliveries per rule, channel and status
// created in [from, to).
func (s *Store) ReportRuleDeliveries(ctx context.Context, from, to time.Time) ([]RuleDeliveryCount, error) {
	return reportRows(ctx, s, "ReportRuleDeliveries", func(r pgx.Rows, c *RuleDeliveryCount) error {
		return r.Scan(&c.Rule, &c.Channel, &c.Status, &c.N)
	}, from, to)
}

// ReportRuleCoupons returns the coupons per rule issued in [from, to):
// issued, redeemed, and expired unredeemed by now.
func (s *Store) ReportRuleCoupons(ctx context.Context, from, to, now time.Time) ([]RuleCouponCount, error) {
	return reportRows(ctx, s, "ReportRuleCoupons", func(r pgx.Rows, c *RuleCouponCount) error {
		return r.Scan(&c.Rule, &c.Issued, &c.Redeemed, &c.Expired)
	}, from, to, now)
}

// ReportRuleRevenue returns, per rule, the orders in [from, to) that came
// within window after a firing of the rule for the customer, and their total.
func (s *Store) ReportRuleRevenue(ctx context.Context, from, to time.Time, orderTypes []string, window time.Duration) ([]RuleRevenue, error) {
	r, err := s.rollups(ctx)
	if err != nil {
		return nil, err
	}
	if r != nil && slices.Equal(r.orderTypes, orderTypes) && r.attrMs == window.Milliseconds() {
		return s.rollupRuleRevenue(ctx, r, from, to, orderTypes, window)
	}
	return reportRows(ctx, s, "ReportRuleRevenue", func(r pgx.Rows, c *RuleRevenue) error {
		return r.Scan(&c.Rule, &c.Orders, &c.Revenue)
	}, from, to, orderTypes, window.Milliseconds())
}

// RuleHoldoutGroup is one group of a rule with a holdout: the customers it
// fired for (held out, or treated) and how many of them converted.
type RuleHoldoutGroup struct {
	Rule      string
	Holdout   bool
	Customers int64
	Converted int64
}

// ReportRuleHoldout returns, for each rule with held-out firings in
// [from, to), its two groups: the customers it fired for and how many
// placed an order (orderTypes) within window after their first firing.
func (s *Store) ReportRuleHoldout(ctx context.Context, from, to time.Time, orderTypes []string, window time.Duration) ([]RuleHoldoutGroup, error) {
	return reportRows(ctx, s, "ReportRuleHoldout", func(r pgx.Rows, g *RuleHoldoutGroup) error {
		return r.Scan(&g.Rule, &g.Holdout, &g.Customers, &g.Converted)
	}, from, to, orderTypes, window.Milliseconds())
}

// ReportSettings tunes the current transaction for the report queries (no
// JIT, more work_mem); on a pool it has no lasting effect.
func (s *Store) ReportSettings(ctx context.Context) error {
	if _, err := s.db.Exec(ctx, q("ReportSettings")); err != nil {
		return fmt.Errorf("report settings: %w", err)
	}
	return nil
}

// CountEvents counts all events (the report benchmark's baseline).
func (s *Store) CountEvents(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRow(ctx, q("ReportEventsCount")).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// reportRows runs the named report query and scans its (few) rows.
func reportRows[T any](ctx context.Context, s *Store, name string, scan func(pgx.Rows, *T) error, args ...any) ([]T, error) {
	rows, err := s.db.Query(ctx, q(name), args...)
	if err != nil {
		return nil, fmt.Errorf("report query %s: %w", name, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := scan(rows, &v); err != nil {
			return nil, fmt.Errorf("report query %s: %w", name, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report query %s: %w", name, err)
	}
	return out, nil
}
