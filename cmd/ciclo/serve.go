package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func newServeCmd() *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API and the job workers",
		Long: `serve runs ciclo: the HTTP API (POST /v1/events, unsubscribe links) and
the workers that evaluate rules and send email and webhooks. Migrations are
applied at start unless --no-migrate is given.

Roles (--role): "all" runs both in one process; "api" serves the HTTP API and
the River UI and only enqueues jobs; "worker" works jobs and serves only
/healthz, /readyz and /metrics. Run as many of each as you need against one
database.

Operations endpoints: /healthz (process up) and /readyz (database reachable,
schema current, rules loaded) need no auth; /metrics (Prometheus) needs the
--metrics-token or the API token as bearer token; /riverui/ (River's job UI:
see, retry, cancel jobs) needs the API token as bearer token or the
--ui-user/--ui-password basic auth.

The rules file is reloaded when it changes on disk and on SIGHUP; a file
with errors is rejected (the errors are logged) and the last good rule set
keeps running. /healthz shows the rules_version in force.

On SIGINT or SIGTERM it stops accepting requests, stops fetching jobs and
lets running jobs finish within --shutdown-timeout, then cancels them and
exits 0; a second signal stops at once.

Every flag can also come from its environment variable or from a YAML file
(--config) whose keys are the flag names; flags win over the environment,
which wins over the file.`,
		Example: `  ciclo serve --rules rules.yaml
  ciclo serve --role api --addr :8080
  ciclo serve --role worker --addr :9090 --email-workers 20
  ciclo serve --config ciclo.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := startApp(cmd, &f)
			if err != nil {
				return err
			}
			defer r.release()
			a, logger, ctx := r.app, r.logger, cmd.Context()
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
	f.register(cmd, nil)
	return cmd
}
