package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/dryrun"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/worker"
)

func newRulesRunCmd() *cobra.Command {
	var (
		dbURL, rulesPath, format string
		dry                      bool
	)
	cmd := &cobra.Command{
		Use:   "run NAME",
		Short: "Run a scheduled rule's sweep now (a one-off campaign)",
		Long: `run enqueues the sweep of the scheduled rule NAME now, as its cron tick
would, so a one-off campaign needs no edit of its schedule; a running
ciclo worker picks it up. The same rule runs at most once per minute (a
second run in the same minute is reported and queues nothing), and its
cooldown, frequency cap, quiet hours, suppressions and holdout apply as on
every tick.

--dry-run changes nothing: it evaluates the rule over every customer in a
READ ONLY transaction and says how many would match, how many are held out,
suppressed or capped by the frequency cap, with a sample of those matching.
The same is POST /v1/rules/{name}/run (?dry_run=true).`,
		Example: "  ciclo rules run win-back-60d --dry-run\n  ciclo rules run win-back-60d",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, _, err := app.LoadRules(rulesPath)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			pool, err := openDB(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			w := cmd.OutOrStdout()
			if dry {
				rep, err := dryrun.Campaign(ctx, pool, rs, args[0], time.Now())
				if err != nil {
					return err
				}
				if format == "json" {
					return json.NewEncoder(w).Encode(rep)
				}
				printCampaign(w, rep)
				return nil
			}
			client, err := worker.NewClient(pool, &worker.Config{Rules: rules.NewHolder(rs), InsertOnly: true})
			if err != nil {
				return err
			}
			id, dup, err := jobs.RunRuleNow(ctx, client, rs, args[0], time.Now())
			if err != nil {
				return err
			}
			if dup {
				fmt.Fprintf(w, "rule %q already runs this minute (sweep job %d); nothing new queued\n", args[0], id)
				return nil
			}
			fmt.Fprintf(w, "rule %q queued to run now (sweep job %d)\n", args[0], id)
			return nil
		},
	}
	dbFlag(cmd, &dbURL)
	cmd.Flags().StringVar(&rulesPath, "rules", envOr("CICLO_RULES", "rules.yaml"), "rules file (env CICLO_RULES)")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "count what the run would do; change nothing")
	cmd.Flags().StringVar(&format, "format", "text", "dry-run output: text or json")
	return cmd
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func printCampaign(w io.Writer, rep *dryrun.CampaignReport) {
	fmt.Fprintf(w, "rule %q at %s over %d customers:\n", rep.Rule, formatTime(rep.At), rep.Customers)
	fmt.Fprintf(w, "  match       %d\n  held out    %d\n  would act   %d\n  suppressed  %d\n  capped      %d\n  errors      %d\n",
		rep.Matched, rep.HeldOut, rep.WouldAct, rep.Suppressed, rep.Capped, rep.Errors)
	if len(rep.Sample) > 0 {
		fmt.Fprintf(w, "  sample: %s\n", strings.Join(rep.Sample, ", "))
	}
}
