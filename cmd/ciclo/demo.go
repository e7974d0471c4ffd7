package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// demoTimeout bounds the wait for the demo event's email.
const demoTimeout = 30 * time.Second

// demoZones are the time zones the demo customer can live in, in order of
// preference. The demo picks the first whose local time is outside the rule
// set's quiet hours, so its marketing email goes out at any hour while quiet
// hours stay on. Going round the clock, no two neighbouring UTC offsets of
// theirs are more than 8 hours apart (winter or summer), so with
// rules.example.yaml ("21:00-08:00", 13 open hours) one is always outside. The demo's help and the README list them too.
var demoZones = []string{"UTC", "Europe/Madrid", "America/New_York", "America/Los_Angeles", "Asia/Tokyo", "Australia/Sydney"}

// demoZone is the demo customer's time zone.
type demoZone struct {
	// Name is the IANA zone sent as the event's timezone; "" when the rule
	// set has no quiet hours (the customer stays in UTC).
	Name string
	// Local is the customer's local time when the demo picked the zone.
	Local time.Time
	// Held: every candidate zone is in quiet hours, Name is the first and
	// the email waits until Open (local time).
	Held bool
	Open time.Time
}

// pickDemoZone picks the demo customer's time zone at now for quiet hours
// qh (nil: none). A zone qualifies if its local time is outside qh both now
// and demoTimeout later, so the email is not held if the dispatch runs late
// in the wait. Quiet hours have minute resolution, so a window is at least a
// minute long and cannot fit between two instants 30 seconds apart: checking
// both ends is enough.
func pickDemoZone(qh *rules.QuietHours, now time.Time) (demoZone, error) {
	if qh == nil {
		return demoZone{Local: now.UTC(), Open: now.UTC()}, nil
	}
	var first demoZone
	for i, name := range demoZones {
		loc, err := time.LoadLocation(name)
		if err != nil {
			return demoZone{}, fmt.Errorf("demo time zone: %w", err)
		}
		local := now.In(loc)
		if !qh.Contains(local) && !qh.Contains(local.Add(demoTimeout)) {
			return demoZone{Name: name, Local: local, Open: local}, nil
		}
		if i == 0 {
			first = demoZone{Name: name, Local: local, Held: true, Open: qh.NextOpen(local)}
		}
	}
	if !first.Open.After(first.Local) { // open within demoTimeout: wait for the end of the window
		first.Open = qh.NextOpen(first.Local.Add(demoTimeout))
	}
	return first, nil
}

// describe is the line the demo prints about the customer's time zone.
func (z demoZone) describe(qh *rules.QuietHours) string {
	switch {
	case qh == nil:
		return "customer time zone: none, so UTC (the rules set no quiet hours)"
	case z.Held:
		return fmt.Sprintf("customer time zone: %s (local %s)\n"+
			"  every demo time zone (%s) is in quiet hours %s,\n"+
			"  so the email is expected to wait until %s, as the rules say", z.Name, z.Local.Format("15:04"),
			strings.Join(demoZones, ", "), qh, z.Open.Format("Mon 15:04 MST"))
	default:
		return fmt.Sprintf("customer time zone: %s (local %s, outside quiet hours %s)", z.Name, z.Local.Format("15:04"), qh)
	}
}

func newDemoCmd() *cobra.Command {
	var (
		f       flags
		keep    bool
		history historyFlags
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run ciclo on rules.example.yaml and send it a first order",
		Long: `demo starts ciclo exactly as serve does (database, migrations, rules,
workers, HTTP API), posts an order_placed event for a new customer through
the HTTP API, waits for the first-order-bonus rule to fire and prints what
happened: the stage transition, the coupon and where the email went (the
SMTP server, or an .eml file in the outbox). With --keep-running it then
keeps serving so you can send more events.

Marketing email waits out the rules' quiet hours in the customer's time
zone, so the demo customer gets the first of UTC, Europe/Madrid,
America/New_York, America/Los_Angeles, Asia/Tokyo and Australia/Sydney where
it is outside quiet hours now; the demo prints which. If all of them are in
quiet hours, it reports the email held until they end and exits successfully.

Without DATABASE_URL the demo uses the database ciclo_demo on the local
Postgres, or a throwaway cluster deleted on exit; never the database or the
data folder serve uses, so demo customers do not mix with yours.

With --history N, demo instead plays a year of store history for N
customers through ciclo: sign-ups, orders with repeat-purchase decay, NPS
and CSAT answers, coupon redemptions and customers going quiet, posted to
the HTTP API day by day with ciclo's clock set to each day, the scheduled
sweeps run for each day, so the rules fire as they would have. Then
` + "`ciclo report`" + ` and /dashboard/ have something true to show.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if history.customers != 0 {
				return runHistory(cmd, &f, &history, keep)
			}
			r, err := startApp(cmd, &f)
			if err != nil {
				return err
			}
			defer r.release()
			a, cfg, logger, ctx := r.app, r.cfg, r.logger, cmd.Context()
			defer func() {
				if err := a.Stop(context.Background()); err != nil {
					logger.Warn("demo: stop", slog.String("error", err.Error()))
				}
			}()
			if err := runDemo(ctx, cmd.OutOrStdout(), a, cfg); err != nil {
				return err
			}
			if keep {
				fmt.Fprintf(cmd.OutOrStdout(), "\nciclo keeps running on http://%s (Ctrl-C to stop). Try:\n"+
					"  curl -H 'Authorization: Bearer %s' -d '{\"customer_id\":\"c-2\",\"type\":\"signed_up\",\"email\":\"bo@example.com\"}' http://%s/v1/events\n",
					a.Addr(), cfg.APIToken, a.Addr())
				<-ctx.Done()
			}
			return nil
		},
	}
	f.db.demo = true
	f.register(cmd, map[string]string{"rules": "rules.example.yaml", "addr": "127.0.0.1:0"})
	cmd.Flags().BoolVar(&keep, "keep-running", false, "keep serving after the demo event")
	history.register(cmd)
	return cmd
}

// runDemo posts one first order and reports what ciclo did with it.
func runDemo(ctx context.Context, out io.Writer, a *app.App, cfg app.Config) error {
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	// Marketing email waits out quiet hours in the customer's time zone:
	// give the customer one where it is daytime now, and say so.
	qh := a.Rules.Load().Defaults.QuietHours
	zone, err := pickDemoZone(qh, now())
	if err != nil {
		return err
	}
	fmt.Fprintln(out, zone.describe(qh))

	customer := fmt.Sprintf("demo-%d", now().Unix())
	tz := ""
	if zone.Name != "" {
		tz = fmt.Sprintf(`"timezone":%q,`, zone.Name)
	}
	body := fmt.Sprintf(`{"customer_id":%q,"type":"order_placed","idempotency_key":"%s-order-1",`+
		`"email":"%s@example.com","name":"Demo Customer",%s"properties":{"total":49.90}}`, customer, customer, customer, tz)
	fmt.Fprintf(out, "POST http://%s/v1/events\n  %s\n", a.Addr(), body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+a.Addr()+"/v1/events", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.APIToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("post demo event: %w", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Fprintf(out, "→ %s %s\n", resp.Status, strings.TrimSpace(string(answer)))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("demo event rejected: %s", resp.Status)
	}

	// Wait until the email is sent (or failed), or held for quiet hours:
	// the dispatch job snoozed until they end.
	st := store.New(a.Pool)
	var (
		d    *store.Delivery
		held *rivertype.JobRow
	)
	deadline := time.Now().Add(demoTimeout)
	for {
		var err error
		d, err = st.FirstDelivery(ctx, customer)
		if err == nil && d.Status != store.DeliveryQueued {
			break
		}
		if err == nil {
			if held, err = snoozedDispatch(ctx, a, d.ID); err != nil {
				return err
			} else if held != nil {
				break
			}
		}
		if err != nil && !errors.Is(err, store.ErrDeliveryNotFound) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no email was sent within %s", demoTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if held != nil && !zone.Held {
		return fmt.Errorf("the email is held for quiet hours %s until %s, although %s was outside them when the demo posted "+
			"(is this machine's clock right?)", qh, held.ScheduledAt.In(zone.Local.Location()).Format(time.RFC1123), zone.Name)
	}
	if held == nil && d.Status != store.DeliverySent {
		return fmt.Errorf("the email was not sent: %s: %s", d.Status, d.LastError)
	}

	transitions, err := st.Transitions(ctx, customer)
	if err != nil {
		return err
	}
	for _, t := range transitions {
		if t.FiringID == d.FiringID {
			fmt.Fprintf(out, "\nstage:  %s → %s by rule %q (rule set %s)\n", t.From, t.To, t.Rule, t.RuleSetVersion)
		}
	}
	coupons, err := st.CouponsByFiring(ctx, customer, d.FiringID)
	if err != nil {
		return err
	}
	for _, c := range coupons {
		fmt.Fprintf(out, "coupon: %s, valid until %s\n", c.Code, c.ExpiresAt.Format(time.RFC1123))
	}
	switch {
	case held != nil:
		fmt.Fprintf(out, "email:  held for quiet hours %s until %s (customer's local time).\n"+
			"        This is expected, not an error: marketing email waits out quiet hours. It goes out\n"+
			"        then if a ciclo worker is running on this database (e.g. demo --keep-running).\n",
			qh, held.ScheduledAt.In(zone.Local.Location()).Format(time.RFC1123))
	case cfg.SMTPURL != "":
		fmt.Fprintf(out, "email:  %s, handed to %s as %s\n", d.Status, redactURL(cfg.SMTPURL), d.ProviderID)
	default:
		fmt.Fprintf(out, "email:  %s, written to %s (no SMTP server configured)\n", d.Status, d.Response)
	}
	return nil
}

// snoozedDispatch returns delivery id's dispatch job if the dispatch worker
// snoozed it (quiet hours), nil if not.
func snoozedDispatch(ctx context.Context, a *app.App, id int64) (*rivertype.JobRow, error) {
	res, err := a.River.JobList(ctx, river.NewJobListParams().
		Kinds(jobs.DispatchArgs{}.Kind()).
		States(rivertype.JobStateScheduled).
		Where("args->>'delivery_id' = @delivery_id", river.NamedArgs{"delivery_id": strconv.FormatInt(id, 10)}).
		First(1))
	if err != nil {
		return nil, fmt.Errorf("look up the email's dispatch job: %w", err)
	}
	if len(res.Jobs) == 0 {
		return nil, nil
	}
	return res.Jobs[0], nil
}

// redactURL hides a password in a URL for printing.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
