package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Output formats.
const (
	FormatTable = "table"
	FormatJSON  = "json"
	FormatCSV   = "csv"
)

// CheckFormat returns an error naming the accepted formats for any other.
func CheckFormat(format string) error {
	switch format {
	case FormatTable, FormatJSON, FormatCSV:
		return nil
	}
	return fmt.Errorf("%w: format %q: use table, json or csv", ErrBadParams, format)
}

// WriteJSON writes v (a *Lifecycle or *Rules) as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func pct(r *float64) string {
	if r == nil {
		return "-"
	}
	return strconv.FormatFloat(100**r, 'f', 1, 64) + "%"
}

func score(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64)
}

func periodLabel(period string, t time.Time) string {
	switch period {
	case PeriodWeek:
		y, wk := t.ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, wk)
	case PeriodQuarter:
		return fmt.Sprintf("%d-Q%d", t.Year(), (int(t.Month())-1)/3+1)
	}
	return t.Format("2006-01")
}

// Label is a period's short name: 2026-03, 2026-W09 or 2026-Q1.
func (l *Lifecycle) Label(ps *PeriodStat) string { return periodLabel(l.Period, ps.Start) }

// WriteTable writes the lifecycle report as aligned text tables.
func (l *Lifecycle) WriteTable(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "Lifecycle report, %s to %s by %s (churn: %s)\n\n", l.From.Format(time.DateOnly),
		l.To.Add(-time.Nanosecond).Format(time.DateOnly), l.Period, l.ChurnBy)
	fmt.Fprintln(w, "Funnel (customers per stage)")
	for _, s := range l.Funnel {
		fmt.Fprintf(w, "%s\t%d\t\n", s.Stage, s.Customers)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "period\tnew\tacquired\trepeat rate\tchurn rate\tNPS (n)\tCSAT (n)\t")
	for _, ps := range l.Periods {
		fmt.Fprintf(w, "%s\t%d\t%d\t%s (%d/%d)\t%s (%d/%d)\t%s (%d)\t%s (%d)\t\n", l.Label(ps), ps.NewCustomers, ps.Acquired,
			pct(ps.Repeat.Rate), ps.Repeat.Count, ps.Repeat.Of, pct(ps.Churn.Rate), ps.Churn.Count, ps.Churn.Of,
			score(ps.NPS.Value), ps.NPS.Answers, score(ps.CSAT.Value), ps.CSAT.Answers)
	}
	fmt.Fprintln(w, "\nLoyalty points")
	fmt.Fprintln(w, "period\tgranted\tspent\texpired\tliability (outstanding)\t")
	for _, ps := range l.Periods {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t\n", l.Label(ps), ps.Points.Granted, ps.Points.Spent, ps.Points.Expired, ps.Points.Liability)
	}
	fmt.Fprintf(w, "\nConversion within %gd of entering a stage\n", l.ConversionWindowDays)
	if len(l.Periods) > 0 {
		fmt.Fprint(w, "period\t")
		for _, c := range l.Periods[0].Conversion {
			fmt.Fprintf(w, "%s→%s\t", c.From, c.To)
		}
		fmt.Fprintln(w)
	}
	for _, ps := range l.Periods {
		fmt.Fprintf(w, "%s\t", l.Label(ps))
		for _, c := range ps.Conversion {
			fmt.Fprintf(w, "%s (%d/%d)\t", pct(c.Rate), c.Converted, c.Entered)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "\nStage flows (transitions)")
	fmt.Fprintln(w, "period\tfrom\tto\ttransitions\tcustomers\t")
	for _, ps := range l.Periods {
		for _, f := range ps.Flows {
			from := f.From
			if from == "" {
				from = "(new)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t\n", l.Label(ps), from, f.To, f.Transitions, f.Customers)
		}
	}
	fmt.Fprintln(w, "\nMedian time in stage (customers who left it)")
	fmt.Fprintln(w, "stage\tleft\tmedian days\t")
	for _, t := range l.TimeInStage {
		fmt.Fprintf(w, "%s\t%d\t%.1f\t\n", t.Stage, t.Left, t.MedianDays)
	}
	fmt.Fprintln(w, "\nCohort retention (first-order month; % with an order k months later)")
	maxK := 0
	for _, c := range l.Cohorts {
		maxK = max(maxK, len(c.Rates))
	}
	fmt.Fprint(w, "cohort\tcustomers\t")
	for k := 1; k <= maxK; k++ {
		fmt.Fprintf(w, "+%d\t", k)
	}
	fmt.Fprintln(w)
	for _, c := range l.Cohorts {
		fmt.Fprintf(w, "%s\t%d\t", c.Month.Format("2006-01"), c.Customers)
		for _, r := range c.Rates {
			fmt.Fprintf(w, "%.1f%%\t", 100*r)
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

// WriteCSV writes the lifecycle report in long form, one figure a row:
// section, period, subject, metric, value.
func (l *Lifecycle) WriteCSV(out io.Writer) error {
	w := csv.NewWriter(out)
	row := func(section, period, subject, metric string, v any) {
		var s string
		switch x := v.(type) {
		case *float64:
			if x != nil {
				s = strconv.FormatFloat(*x, 'f', -1, 64)
			}
		case float64:
			s = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			s = fmt.Sprint(x)
		}
		_ = w.Write([]string{section, period, subject, metric, s})
	}
	_ = w.Write([]string{"section", "period", "subject", "metric", "value"})
	for _, s := range l.Funnel {
		row("funnel", "", s.Stage, "customers", s.Customers)
	}
	for _, ps := range l.Periods {
		p := ps.Start.Format(time.DateOnly)
		for _, s := range ps.Stages {
			row("stages", p, s.Stage, "customers", s.Customers)
		}
		row("reach", p, "", "new_customers", ps.NewCustomers)
		row("points", p, "", "granted", ps.Points.Granted)
		row("points", p, "", "spent", ps.Points.Spent)
		row("points", p, "", "expired", ps.Points.Expired)
		row("points", p, "", "liability", ps.Points.Liability)
		row("acquisition", p, "", "acquired", ps.Acquired)
		for _, f := range ps.Flows {
			row("flows", p, f.From+"->"+f.To, "transitions", f.Transitions)
		}
		for _, c := range ps.Conversion {
			subj := c.From + "->" + c.To
			row("conversion", p, subj, "entered", c.Entered)
			row("conversion", p, subj, "converted", c.Converted)
			row("conversion", p, subj, "rate", c.Rate)
		}
		for _, r := range []struct {
			name string
			r    Ratio
		}{{"repeat_purchase", ps.Repeat}, {"churn", ps.Churn}} {
			row(r.name, p, "", "count", r.r.Count)
			row(r.name, p, "", "of", r.r.Of)
			row(r.name, p, "", "rate", r.r.Rate)
		}
		for _, s := range []struct {
			name string
			s    Score
		}{{"nps", ps.NPS}, {"csat", ps.CSAT}} {
			row(s.name, p, "", "value", s.s.Value)
			row(s.name, p, "", "answers", s.s.Answers)
		}
	}
	for _, t := range l.TimeInStage {
		row("time_in_stage", "", t.Stage, "median_days", t.MedianDays)
	}
	for _, c := range l.Cohorts {
		m := c.Month.Format(time.DateOnly)
		row("cohort", m, "", "customers", c.Customers)
		for k, r := range c.Rates {
			row("cohort", m, "+"+strconv.Itoa(k+1), "rate", r)
		}
	}
	w.Flush()
	return w.Error()
}

// WriteTable writes the rules report as an aligned text table.
func (r *Rules) WriteTable(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "Rules, %s to %s (revenue: orders within %gd after a firing)\n\n", r.From.Format(time.DateOnly),
		r.To.Add(-time.Nanosecond).Format(time.DateOnly), r.AttributionWindowDays)
	fmt.Fprintln(w, strings.Join(ruleHeader, "\t")+"\t")
	for _, s := range r.Rules {
		fmt.Fprintln(w, strings.Join(s.cells(), "\t")+"\t")
	}
	return w.Flush()
}

// ruleHeader names the rules table's columns; the last four compare a
// rule's treated and held-out customers (empty without a holdout).
var ruleHeader = []string{"rule", "firings", "emails sent", "suppressed", "capped", "failed", "webhooks",
	"coupons", "redeemed", "expired", "redemption", "orders", "revenue",
	"treated conversion", "holdout conversion", "lift", "p value"}

func (s *RuleStat) cells() []string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	lift := []string{"", "", "", ""}
	if l := s.Holdout; l != nil {
		tr, cr := l.Treated.Rate, l.Control.Rate
		lift = []string{pct(&tr), pct(&cr), pct(l.Lift), strconv.FormatFloat(l.PValue, 'f', 3, 64)}
		if l.TooFew {
			lift[3] += " (too few customers)"
		}
	}
	return append([]string{s.Rule, i(s.Firings), i(s.Emails.Sent), i(s.Emails.Suppressed), i(s.Emails.Capped), i(s.Emails.Failed),
		i(s.Webhooks.Sent), i(s.Coupons.Issued), i(s.Coupons.Redeemed), i(s.Coupons.Expired), pct(s.RedemptionRate),
		i(s.AttributedOrders), strconv.FormatFloat(s.AttributedRevenue, 'f', 2, 64)}, lift...)
}

// WriteCSV writes the rules report as CSV with a header row.
func (r *Rules) WriteCSV(out io.Writer) error {
	w := csv.NewWriter(out)
	hdr := make([]string, len(ruleHeader))
	for i, h := range ruleHeader {
		hdr[i] = strings.ReplaceAll(h, " ", "_")
	}
	_ = w.Write(hdr)
	for _, s := range r.Rules {
		_ = w.Write(s.cells())
	}
	w.Flush()
	return w.Error()
}
