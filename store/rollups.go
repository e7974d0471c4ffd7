package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Report rollups (docs/metrics.md "Rollups"). FoldReports, run by a periodic
// job, derives small tables from stage_transitions, events and rule_firings:
// stage flows per day, week, month and quarter, conversion, buyers per
// period, attributed orders per day, and every customer's stage spans. The
// report queries read a period (or day) from them only when it is whole in
// the report's range and no row touching it was written since the fold —
// triggers log each written row's customer and day in report_dirty, in the
// writer's transaction — and read the raw rows for the rest. A database
// never folded reads everything raw: the same figures, at the raw cost.

// Sources of report_dirty rows.
const (
	srcTransitions = "stage_transitions"
	srcEvents      = "events"
	srcFirings     = "rule_firings"
)

// RollupConfig is what the rollups are folded for: reports with another
// conversion or attribution window or other order types read raw rows for
// the figures that depend on them.
type RollupConfig struct {
	ConversionWindow  time.Duration
	AttributionWindow time.Duration
	OrderTypes        []string
	ScoreTypes        []string // event types of survey answers
}

// rollupVersion changes with what the rollups hold: a fold finding
// another version in report_rollup_state rebuilds them all.
const rollupVersion = 2

// rollups is what a report's snapshot holds of the rollups: the parameters
// they were folded for and the days (per source) written since.
type rollups struct {
	convMs, attrMs int64
	orderTypes     []string
	scoreTypes     []string
	version        int
	dirty          map[string][]time.Time // sorted UTC days
}

// rollups returns the rollups' state, nil before the first fold.
func (s *Store) rollups(ctx context.Context) (*rollups, error) {
	r, err := s.rollupState(ctx)
	if err != nil || r == nil || r.version != rollupVersion {
		return nil, err
	}
	r.dirty, err = s.dirtyDays(ctx, "RollupDirtyDays")
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (s *Store) rollupState(ctx context.Context) (*rollups, error) {
	var r rollups
	err := s.db.QueryRow(ctx, q("RollupState")).Scan(&r.convMs, &r.attrMs, &r.orderTypes, &r.scoreTypes, &r.version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("report rollups: %w", err)
	}
	return &r, nil
}

func (s *Store) dirtyDays(ctx context.Context, query string) (map[string][]time.Time, error) {
	rows, err := s.db.Query(ctx, q(query))
	if err != nil {
		return nil, fmt.Errorf("report rollups: %s: %w", query, err)
	}
	out := map[string][]time.Time{}
	var src string
	var day time.Time
	_, err = pgx.ForEachRow(rows, []any{&src, &day}, func() error {
		out[src] = append(out[src], day.UTC())
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("report rollups: %s: %w", query, err)
	}
	return out, nil
}

func (r *rollups) sameConfig(c RollupConfig) bool {
	return r.convMs == c.ConversionWindow.Milliseconds() && r.attrMs == c.AttributionWindow.Milliseconds() &&
		slices.Equal(r.orderTypes, c.OrderTypes) && slices.Equal(r.scoreTypes, c.ScoreTypes) && r.version == rollupVersion
}

// written says whether a row of source was written since the fold in a
// day overlapping [from, to).
func (r *rollups) written(source string, from, to time.Time) bool {
	days := r.dirty[source]
	i := sort.Search(len(days), func(i int) bool { return days[i].Add(24 * time.Hour).After(from) })
	return i < len(days) && days[i].Before(to)
}

// What a rollup row depends on, so what makes it stale: stage flows and
// buyers depend on the period's rows only; conversion also on the entries
// in the window after the period; a day's attributed orders on the day's
// orders and the firings in the window before it.
func (r *rollups) flowsStale(a, b time.Time) bool  { return r.written(srcTransitions, a, b) }
func (r *rollups) repeatStale(a, b time.Time) bool { return r.written(srcEvents, a, b) }
func (r *rollups) conversionStale(a, b time.Time) bool {
	return r.written(srcTransitions, a, b.Add(time.Duration(r.convMs)*time.Millisecond))
}
func (r *rollups) revenueStale(a, b time.Time) bool {
	return r.written(srcEvents, a, b) || r.written(srcFirings, a.Add(-time.Duration(r.attrMs)*time.Millisecond), b)
}

// truncKind returns the start of the UTC day, week (from Monday), month or
// quarter containing t, as date_trunc does.
func truncKind(kind string, t time.Time) time.Time {
	t = t.UTC()
	y, m, d := t.Date()
	switch kind {
	case "day":
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	case "week":
		day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
	case "quarter":
		return time.Date(y, m-(m-1)%3, 1, 0, 0, 0, 0, time.UTC)
	default:
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	}
}

func nextKind(kind string, start time.Time) time.Time {
	switch kind {
	case "day":
		return start.AddDate(0, 0, 1)
	case "week":
		return start.AddDate(0, 0, 7)
	case "quarter":
		return start.AddDate(0, 3, 0)
	default:
		return start.AddDate(0, 1, 0)
	}
}

// ranges are disjoint [starts[i], ends[i]) intervals in order; never nil,
// so that they reach SQL as empty arrays.
type ranges struct{ starts, ends []time.Time }

func newRanges() ranges { return ranges{starts: []time.Time{}, ends: []time.Time{}} }

// add appends [a, b), merged with the last range when they touch or overlap.
func (g *ranges) add(a, b time.Time) {
	if n := len(g.ends); n > 0 && !a.After(g.ends[n-1]) {
		if b.After(g.ends[n-1]) {
			g.ends[n-1] = b
		}
		return
	}
	g.starts, g.ends = append(g.starts, a), append(g.ends, b)
}

// plan splits [from, to) into the periods of kind a rollup serves (whole
// in the range and not stale) and the ranges to read raw.
func plan(kind string, from, to time.Time, stale func(a, b time.Time) bool) (covered []time.Time, raw ranges) {
	covered, raw = []time.Time{}, newRanges()
	for s := truncKind(kind, from); s.Before(to); s = nextKind(kind, s) {
		e := nextKind(kind, s)
		if !s.Before(from) && !e.After(to) && !stale(s, e) {
			covered = append(covered, s)
			continue
		}
		raw.add(maxTime(s, from), minTime(e, to))
	}
	return covered, raw
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// rollupStageFlows is ReportStageFlows from the rollups.
func (s *Store) rollupStageFlows(ctx context.Context, r *rollups, period string, from, to time.Time) ([]Flow, error) {
	covered, raw := plan(period, from, to, r.flowsStale)
	// Before from: the day rollups before from's day but the stale days,
	// raw rows for those and for from's day up to from.
	day0 := truncKind("day", from)
	staleDays, before := []time.Time{}, newRanges()
	for _, d := range r.dirty[srcTransitions] {
		if d.Before(day0) {
			staleDays = append(staleDays, d)
			before.add(d, d.AddDate(0, 0, 1))
		}
	}
	if day0.Before(from) {
		before.add(day0, from)
	}
	return reportRows(ctx, s, "ReportStageFlowsRollup", func(r pgx.Rows, f *Flow) error {
		return r.Scan(&f.Period, &f.From, &f.To, &f.Transitions, &f.Customers)
	}, period, covered, raw.starts, raw.ends, day0, staleDays, before.starts, before.ends)
}

func (s *Store) rollupConversion(ctx context.Context, r *rollups, period string, from, to time.Time, a, b []string, window time.Duration) ([]ConversionCount, error) {
	covered, raw := plan(period, from, to, r.conversionStale)
	read := newRanges()
	for i := range raw.starts {
		read.add(raw.starts[i], raw.ends[i].Add(window))
	}
	return reportRows(ctx, s, "ReportConversionRollup", func(r pgx.Rows, c *ConversionCount) error {
		return r.Scan(&c.Period, &c.From, &c.To, &c.Entered, &c.Converted)
	}, period, covered, raw.starts, raw.ends, a, b, window.Milliseconds(), read.starts, read.ends)
}

func (s *Store) rollupRepeat(ctx context.Context, r *rollups, period string, from, to time.Time, orderTypes []string) ([]RepeatCount, error) {
	covered, raw := plan(period, from, to, r.repeatStale)
	return reportRows(ctx, s, "ReportRepeatRollup", func(r pgx.Rows, c *RepeatCount) error {
		return r.Scan(&c.Period, &c.Repeat, &c.Buyers)
	}, period, covered, raw.starts, raw.ends, orderTypes)
}

func (s *Store) rollupRuleRevenue(ctx context.Context, r *rollups, from, to time.Time, orderTypes []string, window time.Duration) ([]RuleRevenue, error) {
	covered, raw := plan("day", from, to, r.revenueStale)
	return reportRows(ctx, s, "ReportRuleRevenueRollup", func(r pgx.Rows, c *RuleRevenue) error {
		return r.Scan(&c.Rule, &c.Orders, &c.Revenue)
	}, covered, raw.starts, raw.ends, orderTypes, window.Milliseconds())
}

func (s *Store) rollupScores(ctx context.Context, r *rollups, period string, from, to time.Time, args ...any) ([]ScoreCount, error) {
	covered, raw := plan("day", from, to, r.repeatStale)
	return reportRows(ctx, s, "ReportScoresRollup", func(r pgx.Rows, c *ScoreCount) error {
		return r.Scan(&c.Period, &c.Event, &c.High, &c.Low, &c.Answers)
	}, append([]any{period, covered, raw.starts, raw.ends}, args...)...)
}

// FoldStats says what one FoldReports did.
type FoldStats struct {
	Skipped bool  // another fold held the lock
	Full    bool  // first fold, or new parameters: every rollup rebuilt
	Written int64 // report_dirty rows taken
	Periods int   // periods and days refolded
}

// foldKinds are the period kinds each rollup is kept for.
var (
	flowKinds   = []string{"day", "week", "month", "quarter"}
	periodKinds = []string{"week", "month", "quarter"}
)

// FoldReports brings the report rollups up to date with the rows written
// since the last fold (all rows on the first fold, or when cfg differs from
// the rollups'). Run it in a REPEATABLE READ transaction: it takes exactly
// the report_dirty rows of its snapshot, refolds what they touch from the
// rows of the same snapshot, and commits both together, so a row committed
// later (whatever its id or occurred_at) stays for the next fold. Only one
// fold runs at a time; a concurrent one returns Skipped.
func (s *Store) FoldReports(ctx context.Context, cfg RollupConfig) (FoldStats, error) {
	var st FoldStats
	var iso string
	if err := s.db.QueryRow(ctx, q("FoldLock")).Scan(&st.Skipped, &iso); err != nil {
		return st, fmt.Errorf("fold reports: lock: %w", err)
	}
	st.Skipped = !st.Skipped
	if iso != "repeatable read" {
		return st, fmt.Errorf("fold reports: needs a repeatable read transaction, not %s", iso)
	}
	if st.Skipped {
		return st, nil
	}
	state, err := s.rollupState(ctx)
	if err != nil {
		return st, err
	}
	st.Full = state == nil || !state.sameConfig(cfg)
	tag, err := s.db.Exec(ctx, q("FoldBegin"))
	if err != nil {
		return st, fmt.Errorf("fold reports: take written rows: %w", err)
	}
	st.Written = tag.RowsAffected()
	r := &rollups{convMs: cfg.ConversionWindow.Milliseconds(), attrMs: cfg.AttributionWindow.Milliseconds(), orderTypes: cfg.OrderTypes}
	if st.Full {
		for _, t := range []string{"report_score_days", "report_flow_periods", "report_conversion_periods", "report_repeat_periods", "report_revenue_days", "report_stage_spans"} {
			if _, err := s.db.Exec(ctx, "DELETE FROM "+t); err != nil {
				return st, fmt.Errorf("fold reports: clear %s: %w", t, err)
			}
		}
		var lo, hi *time.Time
		if err := s.db.QueryRow(ctx, q("FoldBounds")).Scan(&lo, &hi); err != nil {
			return st, fmt.Errorf("fold reports: bounds: %w", err)
		}
		r.dirty = map[string][]time.Time{}
		if lo != nil {
			for d := truncKind("day", *lo); !d.After(*hi); d = d.AddDate(0, 0, 1) {
				for _, src := range []string{srcTransitions, srcEvents, srcFirings} {
					r.dirty[src] = append(r.dirty[src], d)
				}
			}
		}
	} else if r.dirty, err = s.dirtyDays(ctx, "FoldDays"); err != nil {
		return st, err
	}

	conv, attr := time.Duration(r.convMs)*time.Millisecond, time.Duration(r.attrMs)*time.Millisecond
	for _, kind := range flowKinds {
		n, err := s.fold(ctx, kind, stalePeriods(kind, r.dirty[srcTransitions], 0, 0, r.flowsStale), "FoldDeleteFlows",
			func(a, b time.Time) (pgx.CopyFromSource, error) {
				rows, err := reportRows(ctx, s, "ReportStageFlowsRollup", func(r pgx.Rows, f *Flow) error {
					return r.Scan(&f.Period, &f.From, &f.To, &f.Transitions, &f.Customers)
				}, kind, []time.Time{}, []time.Time{a}, []time.Time{b}, time.Time{}, []time.Time{}, []time.Time{}, []time.Time{})
				return copyRows(rows, func(f Flow) []any {
					return []any{kind, f.Period.UTC(), f.From, f.To, f.Transitions, f.Customers}
				}), err
			}, "report_flow_periods", "kind", "period", "from_stage", "to_stage", "transitions", "customers")
		if err != nil {
			return st, err
		}
		st.Periods += n
	}
	for _, kind := range periodKinds {
		n, err := s.fold(ctx, kind, stalePeriods(kind, r.dirty[srcTransitions], conv, 0, r.conversionStale), "FoldDeleteConversion",
			func(a, b time.Time) (pgx.CopyFromSource, error) {
				var out [][]any
				rows, err := s.db.Query(ctx, q("FoldConversion"), kind, []time.Time{a}, []time.Time{b}, r.convMs,
					[]time.Time{a}, []time.Time{b.Add(conv)})
				if err != nil {
					return nil, fmt.Errorf("fold conversion: %w", err)
				}
				var period time.Time
				var sa, sb string
				var n int64
				_, err = pgx.ForEachRow(rows, []any{&period, &sa, &sb, &n}, func() error {
					out = append(out, []any{kind, period.UTC(), sa, sb, n})
					return nil
				})
				return pgx.CopyFromRows(out), err
			}, "report_conversion_periods", "kind", "period", "a", "b", "n")
		if err != nil {
			return st, err
		}
		st.Periods += n
		n, err = s.fold(ctx, kind, stalePeriods(kind, r.dirty[srcEvents], 0, 0, r.repeatStale), "FoldDeleteRepeat",
			func(a, b time.Time) (pgx.CopyFromSource, error) {
				g := ranges{starts: []time.Time{a}, ends: []time.Time{b}}
				rows, err := reportRows(ctx, s, "ReportRepeatRollup", func(r pgx.Rows, c *RepeatCount) error {
					return r.Scan(&c.Period, &c.Repeat, &c.Buyers)
				}, kind, []time.Time{}, g.starts, g.ends, cfg.OrderTypes)
				return copyRows(rows, func(c RepeatCount) []any { return []any{kind, c.Period.UTC(), c.Repeat, c.Buyers} }), err
			}, "report_repeat_periods", "kind", "period", "repeat", "buyers")
		if err != nil {
			return st, err
		}
		st.Periods += n
	}
	days := stalePeriods("day", r.dirty[srcEvents], 0, 0, r.revenueStale)
	days = append(days, stalePeriods("day", r.dirty[srcFirings], 0, attr, r.revenueStale)...)
	slices.SortFunc(days, func(a, b time.Time) int { return a.Compare(b) })
	n, err := s.fold(ctx, "day", slices.Compact(days), "FoldDeleteRevenue",
		func(a, b time.Time) (pgx.CopyFromSource, error) {
			var out [][]any
			rows, err := s.db.Query(ctx, q("ReportRevenueDays"), []time.Time{a}, []time.Time{b}, cfg.OrderTypes, r.attrMs)
			if err != nil {
				return nil, fmt.Errorf("fold revenue: %w", err)
			}
			var day time.Time
			var rule string
			var orders int64
			var revenue pgtype.Numeric
			_, err = pgx.ForEachRow(rows, []any{&day, &rule, &orders, &revenue}, func() error {
				out = append(out, []any{day, rule, orders, revenue})
				return nil
			})
			return pgx.CopyFromRows(out), err
		}, "report_revenue_days", "day", "rule", "orders", "revenue")
	if err != nil {
		return st, err
	}
	st.Periods += n

	n, err = s.fold(ctx, "day", stalePeriods("day", r.dirty[srcEvents], 0, 0, r.repeatStale), "FoldDeleteScores",
		func(a, b time.Time) (pgx.CopyFromSource, error) {
			var out [][]any
			rows, err := s.db.Query(ctx, q("FoldScores"), a, b, cfg.ScoreTypes)
			if err != nil {
				return nil, fmt.Errorf("fold scores: %w", err)
			}
			var day time.Time
			var typ string
			var score pgtype.Numeric
			var n int64
			_, err = pgx.ForEachRow(rows, []any{&day, &typ, &score, &n}, func() error {
				out = append(out, []any{day, typ, score, n})
				return nil
			})
			return pgx.CopyFromRows(out), err
		}, "report_score_days", "day", "type", "score", "n")
	if err != nil {
		return st, err
	}
	st.Periods += n

	if st.Full {
		_, err = s.db.Exec(ctx, q("FoldStageSpansAll"))
	} else if _, err = s.db.Exec(ctx, q("FoldDeleteSpans")); err == nil {
		_, err = s.db.Exec(ctx, q("FoldStageSpans"))
	}
	if err != nil {
		return st, fmt.Errorf("fold reports: stage spans: %w", err)
	}
	if _, err := s.db.Exec(ctx, q("FoldState"), r.convMs, r.attrMs, cfg.OrderTypes, cfg.ScoreTypes, rollupVersion); err != nil {
		return st, fmt.Errorf("fold reports: state: %w", err)
	}
	return st, nil
}

// stalePeriods lists, in order, the periods of kind that stale finds stale
// given rows written on days: those within back before and ahead after a
// day are the candidates.
func stalePeriods(kind string, days []time.Time, back, ahead time.Duration, stale func(a, b time.Time) bool) []time.Time {
	seen := map[time.Time]bool{}
	var out []time.Time
	for _, d := range days {
		for p := truncKind(kind, d.Add(-back)); p.Before(d.Add(24*time.Hour + ahead)); p = nextKind(kind, p) {
			if !seen[p] && stale(p, nextKind(kind, p)) {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// fold refolds the periods of kind, in runs of consecutive periods of up
// to about a month (one statement each, so that catching up a long history
// sorts a month at a time): it deletes a run's rollup rows and copies in
// what compute returns for it.
func (s *Store) fold(ctx context.Context, kind string, periods []time.Time, del string,
	compute func(a, b time.Time) (pgx.CopyFromSource, error), table string, cols ...string) (int, error) {
	for i := 0; i < len(periods); {
		a := periods[i]
		b := nextKind(kind, a)
		for i++; i < len(periods) && periods[i].Equal(b) && b.Sub(a) < 31*24*time.Hour; i++ {
			b = nextKind(kind, b)
		}
		args := []any{kind, a, b}
		if del == "FoldDeleteRevenue" || del == "FoldDeleteScores" {
			args = args[1:]
		}
		if _, err := s.db.Exec(ctx, q(del), args...); err != nil {
			return 0, fmt.Errorf("fold %s %s: %w", table, kind, err)
		}
		src, err := compute(a, b)
		if err != nil {
			return 0, fmt.Errorf("fold %s %s: %w", table, kind, err)
		}
		tx, ok := s.db.(interface {
			CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error)
		})
		if !ok {
			return 0, fmt.Errorf("fold %s: needs a transaction", table)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, src); err != nil {
			return 0, fmt.Errorf("fold %s %s: %w", table, kind, err)
		}
	}
	return len(periods), nil
}

func copyRows[T any](rows []T, row func(T) []any) pgx.CopyFromSource {
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = row(r)
	}
	return pgx.CopyFromRows(out)
}

// TxBeginner begins transactions: *pgxpool.Pool or *pgx.Conn.
type TxBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// FoldReportsTx runs FoldReports in a REPEATABLE READ transaction of db.
func FoldReportsTx(ctx context.Context, db TxBeginner, cfg RollupConfig) (FoldStats, error) {
	var st FoldStats
	err := pgx.BeginTxFunc(ctx, db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var err error
		st, err = New(tx).FoldReports(ctx, cfg)
		return err
	})
	return st, err
}
