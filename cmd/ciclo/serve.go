package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/app"
)

func newServeCmd() *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API and the job workers",
		Long: `serve runs ciclo: the HTTP API (POST /v1/events, unsubscribe links,
/healthz) and the workers that evaluate rules and send email and webhooks.
Migrations are applied at start unless --no-migrate is given.

The rules file is reloaded when it changes on disk and on SIGHUP; a file
with errors is rejected (the errors are logged) and the last good rule set
keeps running. /healthz shows the rules_version in force.

On SIGINT or SIGTERM it stops accepting requests, stops fetching jobs and
lets running jobs finish (30 s), then cancels them; a second signal stops at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := newLogger(slog.LevelInfo)
			ctx := cmd.Context()
			cfg, release, err := f.config(ctx, logger)
			if err != nil {
				return err
			}
			defer release()
			a, err := app.New(ctx, cfg)
			if err != nil {
				return err
			}
			if err := a.Start(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go a.ReloadOn(ctx, hup)
			<-ctx.Done()
			logger.Info("serve: shutting down; send the signal again to stop at once")
			hard := make(chan os.Signal, 1)
			signal.Notify(hard, os.Interrupt, syscall.SIGTERM)
			stopCtx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				<-hard
				cancel()
			}()
			return a.Stop(stopCtx)
		},
	}
	f.register(cmd, "rules.yaml")
	return cmd
}
