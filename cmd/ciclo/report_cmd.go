package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/dryrun"
	"github.com/ciclohq/ciclo/report"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// reportFlags are the flags `report` and `report rules` share.
type reportFlags struct {
	dbURL, rulesPath         string
	period, from, to, format string
	conversion, inactive     string
	attribution              string
}

func (f *reportFlags) register(cmd *cobra.Command) {
	dbFlag(cmd, &f.dbURL)
	fl := cmd.Flags()
	fl.StringVar(&f.rulesPath, "rules", env("CICLO_RULES", ""), "rules file whose stages (funnel order) and rule names the report uses (env CICLO_RULES); default: the example's stages")
	fl.StringVar(&f.period, "period", report.PeriodDefault, "bucket figures by week, month or quarter (UTC)")
	fl.StringVar(&f.from, "from", "", "first day of the report, YYYY-MM-DD (default: 12 periods before --to)")
	fl.StringVar(&f.to, "to", "", "last day of the report, YYYY-MM-DD, included (default: the end of the current period)")
	fl.StringVar(&f.format, "format", report.FormatTable, "output: table, json or csv")
	fl.StringVar(&f.conversion, "conversion-window", "30d", "how soon after entering a stage reaching the next counts as conversion")
	fl.StringVar(&f.inactive, "inactive-window", "120d", "no order for this long is churn, for rule files without a churned stage")
	fl.StringVar(&f.attribution, "attribution-window", "7d", "orders this soon after a firing count as the rule's revenue")
}

// params validates the flags and builds the report parameters.
func (f *reportFlags) params(now time.Time) (report.Params, error) {
	if err := report.CheckFormat(f.format); err != nil {
		return report.Params{}, err
	}
	p, err := report.ParseParams(f.period, f.from, f.to, now)
	if err != nil {
		return p, err
	}
	for _, w := range []struct {
		flag, val string
		dst       *time.Duration
	}{{"--conversion-window", f.conversion, &p.ConversionWindow}, {"--inactive-window", f.inactive, &p.InactiveWindow},
		{"--attribution-window", f.attribution, &p.AttributionWindow}} {
		d, err := rules.ParseDuration(w.val)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("%s %q: want a positive duration such as 30d, 2w or 36h", w.flag, w.val)
		}
		*w.dst = d
	}
	if f.rulesPath != "" {
		rs, _, err := app.LoadRules(f.rulesPath)
		if err != nil {
			return p, fmt.Errorf("--rules: %w (check the file with `ciclo rules check`)", err)
		}
		p = p.WithRuleSet(rs)
	}
	if _, err := p.Normalize(); err != nil {
		return p, err
	}
	return p, nil
}

// run builds one report in a read-only snapshot and writes it.
func (f *reportFlags) run(ctx context.Context, out io.Writer, rulesReport bool) error {
	p, err := f.params(time.Now())
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, f.dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	var (
		life *report.Lifecycle
		rr   *report.Rules
	)
	err = dryrun.ReadOnly(ctx, pool, func(st *store.Store) error {
		var err error
		if rulesReport {
			rr, err = report.BuildRules(ctx, st, p)
		} else {
			life, err = report.Build(ctx, st, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case f.format == report.FormatJSON && rulesReport:
		return report.WriteJSON(out, rr)
	case f.format == report.FormatJSON:
		return report.WriteJSON(out, life)
	case f.format == report.FormatCSV && rulesReport:
		return rr.WriteCSV(out)
	case f.format == report.FormatCSV:
		return life.WriteCSV(out)
	case rulesReport:
		return rr.WriteTable(out)
	default:
		return life.WriteTable(out)
	}
}

func newReportCmd() *cobra.Command {
	var f reportFlags
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Print the lifecycle metrics: funnel, flows, conversion, repeat rate, churn, NPS, CSAT, cohorts",
		Long: `report prints ciclo's lifecycle metrics per period: customers per stage
(the funnel, now and at each period's end), stage flows, reach (new
customers), acquisition, conversion per funnel step within a window, repeat
purchase rate, churn rate, median time in stage, cohort retention by
first-order month, NPS and CSAT with their answer counts. docs/metrics.md
defines each figure and gives its SQL. Everything is computed in Postgres
from the stage transitions and events, in one read-only snapshot.

GET /v1/reports/lifecycle returns the same JSON as --format json.`,
		Example: "  ciclo report\n  ciclo report --period week --from 2026-01-01 --to 2026-03-31\n" +
			"  ciclo report --format json > lifecycle.json\n  ciclo report rules --format csv",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd.Context(), cmd.OutOrStdout(), false)
		},
	}
	f.register(cmd)

	var rf reportFlags
	rulesCmd := &cobra.Command{
		Use:   "rules",
		Short: "Print per rule: firings, emails, webhooks, coupons and attributed revenue",
		Long: `report rules prints, per rule, over the report's range: firings, emails
sent / suppressed / capped / failed, webhooks sent, coupons issued /
redeemed / expired, redemption rate, and the orders (and their revenue)
placed within the attribution window after a firing for the customer.

GET /v1/reports/rules returns the same JSON as --format json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return rf.run(cmd.Context(), cmd.OutOrStdout(), true)
		},
	}
	rf.register(rulesCmd)
	cmd.AddCommand(rulesCmd)
	return cmd
}
