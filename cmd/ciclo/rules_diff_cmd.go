package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/dryrun"
	"github.com/ciclohq/ciclo/rules"
)

func newRulesDiffCmd() *cobra.Command {
	var (
		dbURL, at string
		sample    int
	)
	cmd := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "Show how many customers each added, removed or changed rule would match",
		Long: `diff compares two rules files and, for every rule that was added, removed
or changed, counts the customers of the live database it matches with the
old file and with the new one, e.g.

  rule "win-back": matches 41,203 customers (was 12,004) — this change would email 41,203 customers

Customers are streamed in a READ ONLY transaction (memory stays flat);
--sample N evaluates a random sample of N customers instead. Scheduled rules
are evaluated as a sweep at --at would; event rules on each customer's
current facts with an empty event of their type. Nothing is written or sent.`,
		Example: "  ciclo rules diff rules.yaml rules.new.yaml\n  ciclo rules diff --sample 10000 rules.yaml rules.new.yaml",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			when, err := parseAt(at)
			if err != nil {
				return err
			}
			old, _, err := app.LoadRules(args[0])
			if err != nil {
				return err
			}
			next, _, err := app.LoadRules(args[1])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			pool, err := openDB(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			rep, err := dryrun.Diff(ctx, pool, old, next, sample, when)
			if err != nil {
				return err
			}
			printDiff(cmd.OutOrStdout(), old, next, rep)
			return nil
		},
	}
	dbFlag(cmd, &dbURL)
	cmd.Flags().IntVar(&sample, "sample", 0, "evaluate a random sample of N customers instead of all")
	cmd.Flags().StringVar(&at, "at", "", "evaluation time, RFC 3339 or YYYY-MM-DD (default now)")
	return cmd
}

func printDiff(w io.Writer, old, next *rules.RuleSet, rep *dryrun.DiffReport) {
	scope := fmt.Sprintf("%s customers", thousands(rep.Customers))
	if rep.Sample > 0 {
		scope = fmt.Sprintf("a random sample of %s customers", thousands(rep.Customers))
	}
	fmt.Fprintf(w, "rules %s -> %s, evaluated on %s\n", old.Version, next.Version, scope)
	if len(rep.Rows) == 0 {
		fmt.Fprintln(w, "no rule was added, removed or changed")
		return
	}
	for _, row := range rep.Rows {
		switch row.Change {
		case rules.ChangeAdded:
			fmt.Fprintf(w, "rule %q (added): matches %s customers%s\n", row.Name, thousands(row.After), effect(row.New, row.After))
		case rules.ChangeRemoved:
			fmt.Fprintf(w, "rule %q (removed): matched %s customers; they will no longer get it\n", row.Name, thousands(row.Before))
		default:
			fmt.Fprintf(w, "rule %q: matches %s customers (was %s)%s\n", row.Name, thousands(row.After), thousands(row.Before), effect(row.New, row.After))
		}
		if row.ErrorsBefore+row.ErrorsAfter > 0 {
			fmt.Fprintf(w, "  condition failed at run time for %s customers (was %s)\n", thousands(row.ErrorsAfter), thousands(row.ErrorsBefore))
		}
	}
}

// effect says what the matches mean for customers.
func effect(r *rules.Rule, n int) string {
	switch {
	case n == 0:
		return ""
	case r.Sends(rules.ActionEmail):
		return fmt.Sprintf(" — this change would email %s customers", thousands(n))
	case r.Sends(rules.ActionWebhook):
		return fmt.Sprintf(" — this change would call a webhook for %s customers", thousands(n))
	case r.Sends(rules.ActionCoupon):
		return fmt.Sprintf(" — this change would issue coupons to %s customers", thousands(n))
	}
	return ""
}

// thousands formats n with comma separators: 41203 → "41,203".
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
