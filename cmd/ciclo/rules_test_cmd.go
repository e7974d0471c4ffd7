package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/dryrun"
	"github.com/ciclohq/ciclo/rules"
)

// readOnlyDatabaseDefault is the database the read-only commands read when
// neither --database-url nor DATABASE_URL is set. Unlike serve they never
// create a database or start a throwaway one: there would be nothing to read.
const readOnlyDatabaseDefault = "postgres://postgres@127.0.0.1:5432/ciclo?sslmode=disable"

// dbFlag registers --database-url on a read-only command.
func dbFlag(cmd *cobra.Command, url *string) {
	cmd.Flags().StringVar(url, "database-url", env("DATABASE_URL", readOnlyDatabaseDefault), "Postgres URL to read (env DATABASE_URL); only read, in READ ONLY transactions")
}

// openDB connects to the database a read-only command reads.
func openDB(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w (check DATABASE_URL)", err)
	}
	return pool, nil
}

// parseAt reads --at: RFC 3339, or a date (midnight UTC); "" is now.
func parseAt(s string) (time.Time, error) {
	if s == "" {
		return time.Now(), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--at %q: use RFC 3339 (2025-06-01T09:00:00Z) or a date (2025-06-01)", s)
}

func newRulesTestCmd() *cobra.Command {
	var (
		dbURL, customer, eventFile, at, format string
	)
	cmd := &cobra.Command{
		Use:   "test FILE --customer ID [--event event.json] [--at TIME]",
		Short: "Dry-run a rules file for one customer: what would fire, why, and what it would do",
		Long: `test evaluates a rules file for one customer of the live database and
shows, for each rule, whether it would fire and why: the value of every
part of its when condition (split at &&, || and !). For rules that would
fire it shows the stage change (from → to), the coupon (kind, value,
expiry), the rendered email (subject and text) and the webhook JSON body.

With --event, the event rules for that event type are evaluated, with the
event folded into the customer's facts as ingestion would (an order
increments orders_count…). The file is a JSON event as POST /v1/events
takes it. Without --event the scheduled rules are evaluated as a sweep at
--at would, including the cooldown guard.

Nothing is written, enqueued or sent: every query runs in a READ ONLY
transaction that is rolled back. Coupon codes and unsubscribe links are
placeholders.`,
		Example: `  ciclo rules test rules.yaml --customer c-42
  ciclo rules test rules.yaml --customer c-42 --event order.json --at 2025-06-01T09:00:00Z
  ciclo rules test rules.yaml --customer c-42 --format json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if customer == "" {
				return fmt.Errorf("--customer is required")
			}
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: use text or json", format)
			}
			when, err := parseAt(at)
			if err != nil {
				return err
			}
			var ev *dryrun.Event
			if eventFile != "" {
				if ev, err = readEvent(eventFile); err != nil {
					return err
				}
			}
			rs, tset, err := app.LoadRules(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			pool, err := openDB(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			rep, err := dryrun.Test(ctx, pool, rs, tset, dryrun.TestOptions{CustomerID: customer, Event: ev, At: when})
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			printReport(cmd.OutOrStdout(), args[0], rep)
			return nil
		},
	}
	dbFlag(cmd, &dbURL)
	cmd.Flags().StringVar(&customer, "customer", "", "id of the customer to evaluate (required)")
	cmd.Flags().StringVar(&eventFile, "event", "", "JSON file with an event as POST /v1/events takes it; without it, scheduled rules are evaluated")
	cmd.Flags().StringVar(&at, "at", "", "evaluation time, RFC 3339 or YYYY-MM-DD (default now)")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func readEvent(path string) (*dryrun.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read event: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var ev dryrun.Event
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("event %s: %w", path, err)
	}
	if ev.Type == "" {
		return nil, fmt.Errorf("event %s: type is required", path)
	}
	return &ev, nil
}

// printReport writes a Report for people.
func printReport(w io.Writer, file string, rep *dryrun.Report) {
	c := rep.Customer
	fmt.Fprintf(w, "%s (version %s) for customer %s at %s\n", file, rep.RuleSetVersion, c.ID, rep.At.UTC().Format(time.RFC3339))
	if rep.Event != nil {
		props, _ := json.Marshal(rep.Event.Properties)
		fmt.Fprintf(w, "event: %s %s\n", rep.Event.Type, props)
	} else {
		fmt.Fprintln(w, "no event: evaluating scheduled rules as a sweep would")
	}
	fmt.Fprintf(w, "customer: stage %s, orders_count %d, total_spent %.2f, last_order_at %s, email %q\n\n",
		c.Stage, c.OrdersCount, c.TotalSpent, timeOrNever(c.LastOrderAt), c.Email)
	matched := 0
	for _, rr := range rep.Rules {
		switch {
		case !rr.Triggered:
			fmt.Fprintf(w, "-    %s (%s): not triggered\n", rr.Rule, rr.Trigger)
			continue
		case rr.Error != "":
			fmt.Fprintf(w, "ERR  %s (%s): %s\n", rr.Rule, rr.Trigger, rr.Error)
		case rr.AlreadyFired:
			fmt.Fprintf(w, "SKIP %s (%s): matches, but already fired in this cooldown window\n", rr.Rule, rr.Trigger)
		case rr.Matched:
			matched++
			fmt.Fprintf(w, "FIRE %s (%s)\n", rr.Rule, rr.Trigger)
		default:
			fmt.Fprintf(w, "no   %s (%s)\n", rr.Rule, rr.Trigger)
		}
		printCondition(w, rr.Condition, 0)
		if len(rr.Steps) > 0 {
			fmt.Fprintln(w, "       journey run (no awaited event comes):")
			for _, st := range rr.Steps {
				fmt.Fprintln(w, "         "+st)
			}
		}
		for _, a := range rr.Actions {
			printAction(w, a)
		}
	}
	fmt.Fprintf(w, "\n%d rule(s) would fire. Nothing was written or sent (read-only transaction).\n", matched)
}

func timeOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// printCondition prints a condition tree, one sub-condition per line,
// operands indented under their operator.
func printCondition(w io.Writer, c *rules.Condition, depth int) {
	if c == nil {
		return
	}
	val := "= " + formatValue(c.Value)
	if c.Err != "" {
		val = "error: " + c.Err
	}
	label := ""
	if depth == 0 {
		label = "when "
	}
	fmt.Fprintf(w, "%s%s%s  %s\n", strings.Repeat("  ", depth+3)+" ", label, c.Source, val)
	for _, o := range c.Operands {
		printCondition(w, o, depth+1)
	}
}

func formatValue(v any) string {
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case nil:
		return "nil"
	default:
		return fmt.Sprint(v)
	}
}

func printAction(w io.Writer, a *dryrun.Action) {
	const ind = "       -> "
	switch a.Kind {
	case rules.ActionStage:
		if a.Unchanged {
			fmt.Fprintf(w, "%sstage: stays %s\n", ind, a.To)
		} else {
			fmt.Fprintf(w, "%sstage: %s -> %s\n", ind, a.From, a.To)
		}
	case rules.ActionCoupon:
		exp := "never expires"
		if !a.Coupon.ExpiresAt.IsZero() {
			exp = "expires " + a.Coupon.ExpiresAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%scoupon: %s (%s %s), %s\n", ind, a.Coupon.Describe(), a.Coupon.Kind, formatValue(a.Coupon.Value), exp)
	case rules.ActionEmail:
		fmt.Fprintf(w, "%semail %q to %s\n", ind, a.Template, a.EmailTo)
		if a.Suppressed != "" {
			fmt.Fprintf(w, "          not sent: %s\n", a.Suppressed)
		}
		if a.Error != "" {
			fmt.Fprintf(w, "          does not render: %s\n", a.Error)
			return
		}
		fmt.Fprintf(w, "          Subject: %s\n", a.Subject)
		for _, line := range strings.Split(strings.TrimRight(a.Text, "\n"), "\n") {
			fmt.Fprintf(w, "          | %s\n", line)
		}
	case rules.ActionWebhook:
		fmt.Fprintf(w, "%swebhook POST %s\n          %s\n", ind, a.URL, a.Body)
	}
}
