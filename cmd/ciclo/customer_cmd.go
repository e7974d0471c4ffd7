package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/dryrun"
	"github.com/ciclohq/ciclo/store"
)

func newCustomerCmd() *cobra.Command {
	var (
		dbURL string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "customer ID",
		Short: "Print a customer's timeline: why did this customer get this",
		Long: `customer prints one customer's facts and history in time order: the
events ciclo received, the rules that fired (with the rule-set version in
force), the stage transitions, the coupons issued, the deliveries (email,
webhook) with their status, and the rules skipped because their condition
failed at run time (say, a property sent as a string compared with a
number), with the error. A queued delivery whose dispatch waits says until
when and why: quiet hours in the customer's time zone, or a retry after a
failed attempt. The database is only read.`,
		Example: "  ciclo customer c-42\n  ciclo customer c-42 --limit 1000",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			pool, err := openDB(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			var (
				c       *store.Customer
				entries []*store.TimelineEntry
				runs    []*store.JourneyRun
			)
			err = dryrun.ReadOnly(ctx, pool, func(st *store.Store) error {
				var err error
				if c, err = st.GetCustomer(ctx, args[0]); err != nil {
					return err
				}
				if entries, err = st.Timeline(ctx, args[0], limit); err != nil {
					return err
				}
				runs, err = st.CustomerJourneyRuns(ctx, args[0], limit)
				return err
			})
			if err != nil {
				return err
			}
			printTimeline(cmd.OutOrStdout(), c, entries, limit)
			printRuns(cmd.OutOrStdout(), runs)
			return nil
		},
	}
	dbFlag(cmd, &dbURL)
	cmd.Flags().IntVar(&limit, "limit", 200, "show at most the latest N entries")
	return cmd
}

func printTimeline(w io.Writer, c *store.Customer, entries []*store.TimelineEntry, limit int) {
	fmt.Fprintf(w, "customer %s <%s> %s: stage %s, %d order(s), total spent %.2f", c.ID, c.Email, c.Name, c.Stage, c.OrdersCount, c.TotalSpent)
	if !c.UnsubscribedAt.IsZero() {
		fmt.Fprintf(w, ", unsubscribed %s", formatTime(c.UnsubscribedAt))
	}
	fmt.Fprintln(w)
	if len(entries) == limit {
		fmt.Fprintf(w, "(latest %d entries; --limit for more)\n", limit)
	}
	for _, e := range entries {
		fmt.Fprintf(w, "%s  %-10s  %s\n", formatTime(e.At), e.Kind, describeEntry(e))
	}
}

// printRuns lists a customer's journey runs with their current step and
// when they go on next.
func printRuns(w io.Writer, runs []*store.JourneyRun) {
	if len(runs) == 0 {
		return
	}
	fmt.Fprintln(w, "journey runs:")
	for _, r := range runs {
		s := fmt.Sprintf("  #%d %q key %q (rules %s): %s", r.ID, r.Rule, r.Key, r.RuleSetVersion, r.State)
		if r.Step != "" {
			s += ", last step: " + r.Step
		}
		switch r.State {
		case store.RunWaiting:
			s += ", next step at " + formatTime(r.NextStepAt)
		case store.RunWaitingEvent:
			s += fmt.Sprintf(", waiting for %s until %s", r.WaitEvent, formatTime(r.NextStepAt))
		}
		if r.ExitReason != "" {
			s += ": " + r.ExitReason
		}
		fmt.Fprintln(w, s)
	}
}

// describeEntry says what one timeline entry is, in one line.
func describeEntry(e *store.TimelineEntry) string {
	d := e.Detail
	str := func(k string) string {
		if v, ok := d[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	// jsonb renders times in the session's time zone; show them in UTC.
	timeStr := func(k string) string {
		v := str(k)
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return formatTime(t)
		}
		return v
	}
	by := ""
	if e.Rule != "" {
		by = fmt.Sprintf(" by rule %q", e.Rule)
		if e.RuleSetVersion != "" {
			by += " (rules " + e.RuleSetVersion + ")"
		}
	}
	switch e.Kind {
	case store.TimelineEvent:
		props, _ := json.Marshal(d["properties"])
		return fmt.Sprintf("#%d %s %s", e.ID, str("type"), props)
	case store.TimelineFiring:
		s := fmt.Sprintf("rule %q fired (rules %s), #%d", e.Rule, e.RuleSetVersion, e.ID)
		if ev := str("event_id"); ev != "" {
			s += ", on event #" + ev
		} else {
			s += ", " + str("occurrence")
		}
		return s
	case store.TimelineTransition:
		from := str("from")
		if from == "" {
			return "entered " + str("to") + " (new customer)"
		}
		return fmt.Sprintf("%s -> %s%s", from, str("to"), by)
	case store.TimelineCoupon:
		s := fmt.Sprintf("%s %s %s", str("code"), str("kind"), str("value"))
		if exp := timeStr("expires_at"); exp != "" {
			s += ", expires " + exp
		}
		if red := timeStr("redeemed_at"); red != "" {
			s += ", redeemed " + red
		}
		return s + by
	case store.TimelinePoints:
		s := fmt.Sprintf("points %s %+d", str("kind"), int64(d["amount"].(float64)))
		if r := str("reason"); r != "" {
			s += fmt.Sprintf(" (%s)", r)
		}
		if o := str("order_id"); o != "" {
			s += ", order " + o
		}
		if av := timeStr("available_at"); av != "" && av != formatTime(e.At) {
			s += ", available " + av
		}
		if exp := timeStr("expires_at"); exp != "" {
			s += ", expires " + exp
		}
		return s + by
	case store.TimelineTier:
		from := str("from")
		if from == "" {
			from = "(none)"
		}
		to := str("to")
		if to == "" {
			to = "(none)"
		}
		s := fmt.Sprintf("tier %s -> %s", from, to)
		if r := str("reason"); r != "" {
			s += " (" + r + ")"
		}
		return s
	case store.TimelineSkip:
		// expr errors end with a snippet of the condition; the first line says it.
		msg, _, _ := strings.Cut(strings.TrimPrefix(str("error"), fmt.Sprintf("rule %q: ", e.Rule)), "\n")
		s := fmt.Sprintf("rule %q skipped (rules %s)", e.Rule, e.RuleSetVersion)
		if ev := str("event_id"); ev != "" {
			s += ", on event #" + ev
		}
		return s + ": condition failed: " + msg
	case store.TimelineHold:
		s := fmt.Sprintf("#%d %s held until %s", e.ID, str("channel"), timeStr("until"))
		switch str("reason") {
		case store.HoldQuietHours:
			tz := str("timezone")
			if tz == "" {
				tz = "UTC"
			}
			s += ": quiet hours in the customer's time zone (" + tz + ")"
		default:
			s += ": retry after a failed attempt"
			if le := str("last_error"); le != "" {
				s += " (" + strings.TrimSpace(le) + ")"
			}
		}
		return s + by
	case store.TimelineRun:
		return fmt.Sprintf("journey run #%d of %q started, key %q, on event #%s", e.ID, e.Rule, str("key"), str("start_event_id"))
	case store.TimelineStep:
		return fmt.Sprintf("journey run #%d: %s", e.ID, str("step"))
	case store.TimelineRunEnded:
		s := fmt.Sprintf("journey run #%d of %q %s", e.ID, e.Rule, str("state"))
		if r := str("reason"); r != "" {
			s += ": " + r
		}
		return s
	case store.TimelineDelivery:
		action, _ := json.Marshal(d["action"])
		s := fmt.Sprintf("#%d %s %s, %s attempt(s) %s", e.ID, str("channel"), str("status"), str("attempts"), action)
		if sent := timeStr("sent_at"); sent != "" {
			s += ", sent " + sent
		}
		if le := str("last_error"); le != "" {
			s += ", last error: " + strings.TrimSpace(le)
		}
		return s + by
	}
	return ""
}
