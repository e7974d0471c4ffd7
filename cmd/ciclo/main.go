// Command ciclo is the customer-lifecycle marketing worker: it takes events
// from a store over HTTP, runs the marketer's rules on them and on
// schedules, and sends email and webhooks.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/server"
)

// errSilent marks a failure whose details were already printed.
var errSilent = errors.New("")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintln(os.Stderr, "ciclo:", err)
		}
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "ciclo",
		Short: "Customer-lifecycle marketing worker driven by a YAML rules file",
		Long: `ciclo takes what a store's customers do (events over HTTP), runs the
marketer's rules file on each event and on schedules, moves customers between
lifecycle stages, issues coupons and sends email and signed webhooks. All
state is in Postgres; every stage change is logged.

Configuration comes from flags or environment variables; see each command's
--help.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newMigrateCmd(), newRulesCmd(), newDemoCmd())
	root.AddCommand(newTemplatesCmd(), newCustomerCmd(), newReportCmd(), newImportCmd(), newBenchCmd())
	return root
}

// newLogger logs JSON when stderr is not a terminal, text when it is; lines
// logged while serving an HTTP request carry its request_id.
func newLogger(level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		return slog.New(server.LogHandler(slog.NewTextHandler(os.Stderr, opts)))
	}
	return slog.New(server.LogHandler(slog.NewJSONHandler(os.Stderr, opts)))
}
