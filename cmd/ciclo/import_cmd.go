package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ciclohq/ciclo/csvimport"
	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/migrations"
	"github.com/ciclohq/ciclo/rules"
)

// triggerBatch is how many orders one ingest transaction stores with
// --trigger.
const triggerBatch = 500

// maxListedBadRows caps the bad rows printed one per line; the summary
// counts them all.
const maxListedBadRows = 1000

func newImportCmd() *cobra.Command {
	var (
		db              dbFlags
		rulesPath       string
		strict, trigger bool
		connections     int
	)
	cmd := &cobra.Command{
		Use:   "import customers|orders FILE.csv",
		Short: "Backfill customers or orders from a CSV file, without emailing anyone",
		Long: `import brings a store's existing customers or order history into ciclo once.
Columns are named by the header line:

  customers: id (required), email, name, timezone, created_at, stage,
             accepts_marketing; other columns become attributes
  orders:    customer_id, order_id, total, currency, ordered_at (required),
             status (cancelled/refunded orders are stored but not counted)

Totals are decimal amounts of the currency (19.99 EUR, 1500 JPY) and are
kept as integer minor units. The file is streamed into Postgres in batches;
imported history sets the customers' facts (orders_count, first/last order,
total spent, stage) but fires no event rule and sends nothing, unless
--trigger: then each imported order goes through the event path and the
rules that react to orders run (and may send email). Scheduled rules see
the imported facts at their next sweep.

Bad rows are listed with their line number and reason and skipped; the good
rows land (--strict stops at the first bad row). Re-running the same file
changes nothing. Without DATABASE_URL it imports into the database serve
would use.`,
		Example: "  ciclo import customers customers.csv\n  ciclo import orders orders.csv --strict",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, path := args[0], args[1]
			if kind != csvimport.KindCustomers && kind != csvimport.KindOrders {
				return fmt.Errorf("import %q: say what the file holds: ciclo import customers FILE.csv or ciclo import orders FILE.csv", kind)
			}
			if connections < 1 {
				return fmt.Errorf("--connections %d: must be at least 1; the default is %d", connections, csvimport.ConnectionsDefault)
			}
			if trigger && kind != csvimport.KindOrders {
				return errors.New("--trigger applies to orders only: imported customers fire no rule")
			}
			rs, _, err := app.LoadRules(rulesPath)
			if err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("open %s: %w", path, err)
			}
			defer f.Close()
			info, err := f.Stat()
			if err != nil {
				return fmt.Errorf("open %s: %w", path, err)
			}

			logger := newLogger(slog.LevelWarn)
			ctx := cmd.Context()
			url, release, err := db.resolveAlone(cmd, logger)
			if err != nil {
				return err
			}
			defer release()
			pool, err := openDB(ctx, url)
			if err != nil {
				return err
			}
			defer pool.Close()
			if st, err := migrations.Check(ctx, pool); err != nil {
				return err
			} else if !st.Current() {
				return errors.New("the database schema is behind: run `ciclo migrate` first")
			}

			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			prog := newProgress(errOut, info.Size())
			listed := 0
			opts := csvimport.RunOptions{
				Kind: kind, Stages: rs.Stages, InitialStage: rs.Stages[0], Version: rs.Version,
				Now: time.Now(), Strict: strict, Connections: connections,
				OnBadRow: func(re *csvimport.RowError) {
					if listed++; listed <= maxListedBadRows {
						prog.clear()
						fmt.Fprintf(errOut, "%s: %s\n", path, re)
					}
				},
				OnProgress: func(offset int64, s csvimport.Summary) { prog.set(offset, s.Rows) },
			}
			var sum csvimport.Summary
			if trigger {
				sum, err = importTriggered(ctx, pool, f, rs, opts)
			} else {
				sum, err = csvimport.Run(ctx, pool, f, opts)
			}
			prog.finish(sum.Rows)
			if listed > maxListedBadRows {
				fmt.Fprintf(errOut, "%s: … and %d more bad rows\n", path, listed-maxListedBadRows)
			}
			printImportSummary(out, kind, sum, trigger)
			if err != nil {
				return err
			}
			return nil
		},
	}
	db.register(cmd)
	cmd.Flags().StringVar(&rulesPath, "rules", env("CICLO_RULES", "rules.yaml"), "rules file, for the stages and the initial stage (env CICLO_RULES)")
	cmd.Flags().BoolVar(&strict, "strict", false, "stop at the first bad row (the rows before it are imported)")
	cmd.Flags().IntVar(&connections, "connections", csvimport.ConnectionsDefault, "Postgres connections that write at once, each a share of the customers (their rows stay in file order)")
	cmd.Flags().BoolVar(&trigger, "trigger", false, "orders: fire the rules that react to orders, as if each order had just been sent as an event (may send email)")
	return cmd
}

func printImportSummary(w io.Writer, kind string, s csvimport.Summary, trigger bool) {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Rows) / s.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "imported %s: %d rows read, %d good, %d bad; ", kind, s.Rows, s.Good, s.Bad)
	if kind == csvimport.KindCustomers {
		fmt.Fprintf(w, "%d created, %d updated, %d unchanged", s.Created, s.Updated, s.Unchanged())
	} else {
		fmt.Fprintf(w, "%d new orders, %d already imported", s.Created, s.Unchanged())
	}
	fmt.Fprintf(w, " in %s (%.0f rows/s)\n", s.Elapsed.Round(time.Millisecond), rate)
	if !trigger && s.Created > 0 {
		fmt.Fprintln(w, "no rule fired and nothing was sent; scheduled rules see the imported facts at their next sweep")
	}
}

// importTriggered imports orders through the ingest path, so the rules that
// react to orders run for them.
func importTriggered(ctx context.Context, pool *pgxpool.Pool, r io.Reader, rs *rules.RuleSet, opts csvimport.RunOptions) (csvimport.Summary, error) {
	start := time.Now()
	var sum csvimport.Summary
	holder := rules.NewHolder(rs)
	svc := ingest.NewService(&ingest.Config{Pool: pool, Rules: holder.Load})
	rd, err := csvimport.NewReader(csvimport.KindOrders, r, csvimport.Options{Stages: opts.Stages, Now: opts.Now})
	if err != nil {
		return sum, err
	}
	var batch []*ingest.Event
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := svc.Ingest(ctx, batch, ingest.Options{Batch: true, KeyOnly: true})
		if err != nil {
			return fmt.Errorf("import batch ending at line %d: %w", rd.Line(), err)
		}
		for _, x := range res {
			if !x.Duplicate {
				sum.Created++
			}
		}
		batch = batch[:0]
		opts.OnProgress(rd.InputOffset(), sum)
		return nil
	}
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *csvimport.RowError
		if errors.As(err, &re) {
			sum.Rows++
			sum.Bad++
			opts.OnBadRow(re)
			if opts.Strict {
				if ferr := flush(); ferr != nil {
					return sum, ferr
				}
				return sum, fmt.Errorf("%w (--strict): %w", csvimport.ErrStrict, re)
			}
			continue
		}
		if err != nil {
			return sum, err
		}
		sum.Rows++
		sum.Good++
		o := row.(*csvimport.Order)
		at := o.OrderedAt
		batch = append(batch, &ingest.Event{CustomerID: o.CustomerID, Type: o.EventType(),
			IdempotencyKey: csvimport.OrderKey(o.OrderID), OccurredAt: &at, Properties: o.Properties()})
		if len(batch) >= triggerBatch {
			if err := flush(); err != nil {
				return sum, err
			}
		}
	}
	err = flush()
	sum.Elapsed = time.Since(start)
	return sum, err
}

// progress shows an import's progress: a bar with rows/s and ETA on a
// terminal, else a plain line per 10% of the file.
type progress struct {
	w        io.Writer
	size     int64
	bar      *progressbar.ProgressBar
	lastTen  int64
	start    time.Time
	finished bool
}

func newProgress(w io.Writer, size int64) *progress {
	p := &progress{w: w, size: size, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) && size > 0 {
		p.bar = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("importing"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
	}
	return p
}

// set reports that offset bytes of the file (rows rows) are done.
func (p *progress) set(offset, rows int64) {
	if p.bar != nil {
		rate := float64(rows) / max(time.Since(p.start).Seconds(), 1e-3)
		p.bar.Describe(fmt.Sprintf("importing %d rows (%.0f rows/s)", rows, rate))
		_ = p.bar.Set64(offset)
		return
	}
	if p.size <= 0 {
		return
	}
	for ten := offset * 10 / p.size; p.lastTen < ten && p.lastTen < 10; {
		p.lastTen++
		elapsed := time.Since(p.start)
		rate := float64(rows) / max(elapsed.Seconds(), 1e-3)
		eta := time.Duration(float64(elapsed) * float64(p.size-offset) / float64(max(offset, 1)))
		fmt.Fprintf(p.w, "import: %d%% (%d rows, %.0f rows/s, ETA %s)\n", p.lastTen*10, rows, rate, eta.Round(time.Second))
	}
}

// clear makes room for a line of its own (a bad row) under the bar.
func (p *progress) clear() {
	if p.bar != nil {
		_ = p.bar.Clear()
	}
}

func (p *progress) finish(rows int64) {
	if p.bar != nil && !p.finished {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
	p.finished = true
}
