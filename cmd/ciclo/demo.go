package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/store"
)

// demoTimeout bounds the wait for the demo event's email.
const demoTimeout = 30 * time.Second

func newDemoCmd() *cobra.Command {
	var (
		f    flags
		keep bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run ciclo on rules.example.yaml and send it a first order",
		Long: `demo starts ciclo exactly as serve does (database, migrations, rules,
workers, HTTP API), posts an order_placed event for a new customer through
the HTTP API, waits for the first-order-bonus rule to fire and prints what
happened: the stage transition, the coupon and where the email went (the
SMTP server, or an .eml file in the outbox). With --keep-running it then
keeps serving so you can send more events.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
	f.register(cmd, "rules.example.yaml")
	cmd.Flags().Lookup("addr").DefValue = "127.0.0.1:0"
	_ = cmd.Flags().Set("addr", env("CICLO_ADDR", "127.0.0.1:0"))
	cmd.Flags().BoolVar(&keep, "keep-running", false, "keep serving after the demo event")
	return cmd
}

// runDemo posts one first order and reports what ciclo did with it.
func runDemo(ctx context.Context, out io.Writer, a *app.App, cfg app.Config) error {
	customer := fmt.Sprintf("demo-%d", time.Now().Unix())
	body := fmt.Sprintf(`{"customer_id":%q,"type":"order_placed","idempotency_key":"%s-order-1",`+
		`"email":"%s@example.com","name":"Demo Customer","properties":{"total":49.90}}`, customer, customer, customer)
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

	st := store.New(a.Pool)
	var d *store.Delivery
	deadline := time.Now().Add(demoTimeout)
	for {
		var err error
		d, err = st.FirstDelivery(ctx, customer)
		if err == nil && d.Status != store.DeliveryQueued {
			break
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
	if d.Status != store.DeliverySent {
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
	if cfg.SMTPURL != "" {
		fmt.Fprintf(out, "email:  %s, handed to %s as %s\n", d.Status, redactURL(cfg.SMTPURL), d.ProviderID)
	} else {
		fmt.Fprintf(out, "email:  %s, written to %s (no SMTP server configured)\n", d.Status, d.Response)
	}
	return nil
}

// redactURL hides a password in a URL for printing.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
