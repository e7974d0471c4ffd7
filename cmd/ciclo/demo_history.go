package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/seed"
)

// historyFlags are demo's --history flags.
type historyFlags struct {
	customers, days int
	seed            uint64
}

func (h *historyFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&h.customers, "history", 0, "instead of one order, play a store history of N customers over the past --history-days through ciclo")
	cmd.Flags().IntVar(&h.days, "history-days", seed.DaysDefault, "days of history, ending yesterday")
	cmd.Flags().Uint64Var(&h.seed, "history-seed", 1, "random seed of the history (the same seed gives the same history)")
}

// runHistory starts ciclo on a simulated clock, plays the history through
// it and says where to look.
func runHistory(cmd *cobra.Command, f *flags, h *historyFlags, keep bool) error {
	if h.customers < 0 || h.days <= 0 {
		return fmt.Errorf("--history %d --history-days %d: want a positive number of customers and days", h.customers, h.days)
	}
	clock := seed.NewClock(time.Now().UTC())
	var outbox string
	r, err := startApp(cmd, f, func(c *app.Config) {
		c.Now = clock.Now
		c.NoWatchRules = true
		if c.SMTPURL == "" && !cmd.Flags().Changed("outbox-dir") && os.Getenv("CICLO_OUTBOX_DIR") == "" {
			// A year of email: keep it out of the working directory.
			if dir, err := os.MkdirTemp("", "ciclo-history-outbox-"); err == nil {
				outbox, c.OutboxDir = dir, dir
			}
		}
	})
	if err != nil {
		return err
	}
	defer r.release()
	a, cfg, logger, ctx := r.app, r.cfg, r.logger, cmd.Context()
	defer func() {
		if err := a.Stop(context.Background()); err != nil {
			logger.Warn("demo: stop", slog.String("error", err.Error()))
		}
		if outbox != "" {
			_ = os.RemoveAll(outbox)
		}
	}()
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "playing %d days of history for %d customers through ciclo on %s…\n", h.days, h.customers, a.Addr())
	started := time.Now()
	stats, err := seed.Run(ctx, &seed.Config{App: a, Clock: clock, Token: cfg.APIToken, Customers: h.customers,
		Days: h.days, Seed: h.seed, Progress: out, Logger: logger, QueueSchema: cfg.Worker.Schema})
	if err != nil {
		return err
	}
	clock.Real()
	fmt.Fprintf(out, "history: %d customers, %d events from %s to %s, in %s\n", stats.Customers, stats.Events,
		stats.From.Format(time.DateOnly), stats.To.AddDate(0, 0, -1).Format(time.DateOnly), time.Since(started).Round(time.Second))
	fmt.Fprintf(out, "see it with: ciclo report --database-url '%s'   (and ciclo report rules)\n", redactURL(cfg.DatabaseURL))
	if keep {
		fmt.Fprintf(out, "\nciclo keeps running (Ctrl-C to stop). Dashboard: http://%s/dashboard/ (send `Authorization: Bearer %s`, or log in as CICLO_UI_USER)\n",
			a.Addr(), cfg.APIToken)
		<-ctx.Done()
	}
	return nil
}
