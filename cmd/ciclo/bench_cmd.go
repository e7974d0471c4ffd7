package main

import (
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/bench"
)

func newBenchCmd() *cobra.Command {
	var (
		db     dbFlags
		quick  bool
		format string
		only   string
		runs   int
		sweep  []int
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ciclo's speed targets as ratios against baselines run alongside",
		Long: `bench runs ciclo's real code paths (the HTTP API, River workers, the firing
path, the dispatcher and its SMTP channel) and prints one table in which
every row is a ratio against a baseline measured in the same run on the same
database and machine, so that figures compare across machines and busy hours:

  ingest       single-event API, 8 clients, vs single-row INSERTs on as many
               connections (pgbench-style, run in Go with pgx); batch API, 1,000
               events a request, vs one 1,000-row INSERT per transaction
  sweep        a scheduled sweep of 10 rules, 10% of customers firing (stage,
               coupon, email), vs COPY customers TO STDOUT; 100k and 1M customers
  event-email  event to email at the SMTP server, p50/p95/p99 at 50, 100 and 200
               events/s, and whether the backlog grows; vs an INSERT and a raw
               go-mail send per event at the same rate
  dispatch     a campaign's emails/s, frequency cap on, vs raw go-mail over one
               reused connection
  jobs         evaluate jobs/s in ciclo's workers vs a no-op River worker

Each row also reports this process' peak RSS. Higher ratios are better in
every row; a missed target is marked MISSED in the table (met: false in JSON)
and does not fail the command, which exits non-zero only when a row could not
be measured.

DATABASE: bench needs DATABASE_URL (or the same database serve would use).
Each row creates a schema of its own (ciclo_bench_...) in that database, runs
the migrations there and drops it when done: it never reads or writes the
database's other schemas, so customer data stays untouched. Email goes to an
in-process SMTP server; nothing leaves the machine.

A full run takes several minutes (the 1M-customer sweep loads its rows with
COPY); --quick is CI-sized and takes well under a minute. Progress goes to
stderr, one line per row.`,
		Example: `  ciclo bench --quick
  ciclo bench --only ingest,dispatch --format json
  DATABASE_URL=postgres://localhost/scratch ciclo bench`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bench.CheckFormat(format); err != nil {
				return err
			}
			var picked []string
			for _, o := range strings.Split(only, ",") {
				if o = strings.TrimSpace(o); o != "" {
					picked = append(picked, o)
				}
			}
			if err := bench.CheckOnly(picked); err != nil {
				return err
			}
			logger := newLogger(slog.LevelWarn)
			ctx := cmd.Context()
			url, release, err := db.resolveAlone(cmd, logger)
			if err != nil {
				return err
			}
			defer release()
			res, err := bench.Run(ctx, bench.Config{
				DatabaseURL: url, Quick: quick, Only: picked, Runs: runs, SweepCustomers: sweep,
				Progress: cmd.ErrOrStderr(), Logger: logger,
			})
			if err != nil {
				return err
			}
			return bench.Write(cmd.OutOrStdout(), res, format)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&quick, "quick", false, "CI-sized rows: small sizes, one run each, well under a minute")
	fl.StringVar(&format, "format", bench.FormatTable, "output: table or json")
	fl.StringVar(&only, "only", "", "rows to run, separated by commas: "+strings.Join(bench.Groups, ", ")+" (default: all)")
	fl.IntVar(&runs, "runs", 0, "times each row alternates baseline and ciclo; the median ratio is reported (default: 3, or 1 with --quick)")
	fl.IntSliceVar(&sweep, "sweep-customers", nil, "customers of the sweep rows, separated by commas (default: 100000,1000000, or 5000,20000 with --quick)")
	db.register(cmd)
	return cmd
}
