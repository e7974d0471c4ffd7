// Package bench measures ciclo's speed targets (DESIGN.md) the way `ciclo
// bench` reports them: every figure is a ratio against a baseline measured
// in the same run on the same database and machine (a plain INSERT, COPY
// out, raw go-mail, a no-op River worker), because absolute rates swing
// between runs on a shared machine while ratios hold.
//
// Each row runs the real ciclo process (internal/app: HTTP API, River
// workers, store.Fire, the dispatcher, the SMTP channel) in a schema of its
// own that it creates in the target database and drops afterwards; nothing
// outside that schema is read or written. Email goes to an in-process SMTP
// server (internal/smtpsink).
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Row groups, as --only names them.
const (
	GroupIngest     = "ingest"
	GroupSweep      = "sweep"
	GroupEventEmail = "event-email"
	GroupDispatch   = "dispatch"
	GroupJobs       = "jobs"
)

// Groups lists the row groups in the order they run.
var Groups = []string{GroupIngest, GroupSweep, GroupEventEmail, GroupDispatch, GroupJobs}

// Config is one bench run.
type Config struct {
	// DatabaseURL is the database the run's schemas are created in. Required.
	DatabaseURL string
	// Quick runs CI-sized rows: small sizes, one run each, well under a minute.
	Quick bool
	// Only picks row groups (Groups); empty: all.
	Only []string
	// Runs is how many times each row's baseline and ciclo measurement
	// alternate; the ratio reported is the median. Default: 1 quick, 3 full.
	Runs int
	// SweepCustomers, when set, replaces the sweep row's sizes (customers).
	SweepCustomers []int
	// Progress receives a line per row (stderr in the command). Default: none.
	Progress io.Writer
	// Logger receives ciclo's own logs (warnings). Default: discarded.
	Logger *slog.Logger
}

// Result is one bench run: where it ran and its rows.
type Result struct {
	Machine Machine `json:"machine"`
	Quick   bool    `json:"quick"`
	Runs    int     `json:"runs"`
	// Database is the database the run's schemas were created (and
	// dropped) in, without credentials; Schemas are their names.
	Database string   `json:"database"`
	Schemas  []string `json:"schemas"`
	Seconds  float64  `json:"seconds"`
	Rows     []Row    `json:"rows"`
}

// Row is one measured figure beside its baseline.
type Row struct {
	// Name is group/case, e.g. ingest/single or sweep/100k.
	Name string `json:"name"`
	// Size says what was offered: clients, customers, events/s.
	Size string `json:"size"`
	// Value is ciclo's figure in Unit (the median over the runs).
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Baseline names what ciclo is compared with; BaselineValue is its
	// figure in the same unit (median).
	Baseline      string  `json:"baseline"`
	BaselineValue float64 `json:"baseline_value"`
	// Ratio is ciclo ÷ baseline for rates, baseline ÷ ciclo for latencies,
	// so higher is better in every row: the median over the runs, with the
	// lowest and highest.
	Ratio    float64 `json:"ratio"`
	RatioMin float64 `json:"ratio_min"`
	RatioMax float64 `json:"ratio_max"`
	Runs     int     `json:"runs"`
	// Target is DESIGN.md's target for this row, empty when it has none;
	// Met says whether it was reached (nil: no target).
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	// PeakRSSMiB is this process' peak resident set size while the row was
	// measured (VmHWM, reset before the row; 0 where unsupported).
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// Details are the row's other figures (percentiles, firings, backlog).
	Details map[string]float64 `json:"details,omitempty"`
	Notes   string             `json:"notes,omitempty"`
}

// sample is one run of a row: ciclo's figure and the baseline's.
type sample struct {
	value, base float64
	details     map[string]float64
}

// runner carries a run's settings and sizes.
type runner struct {
	start  time.Time
	cfg    Config
	sizes  sizes
	logger *slog.Logger
	// schemas are those the run created, each dropped after its row.
	schemas []string
}

// sizes are the row sizes of a quick or a full run.
type sizes struct {
	ingestFor    time.Duration // per measurement
	sweep        []int         // customers
	emailRates   []int         // events/s
	emailFor     time.Duration // per rate
	dispatch     int           // emails
	jobs         int           // evaluate jobs
	drainTimeout time.Duration // the longest a row waits for its work to finish
}

var (
	quickSizes = sizes{ingestFor: time.Second, sweep: []int{5_000, 20_000},
		emailRates: []int{50, 100, 200}, emailFor: time.Second, dispatch: 500, jobs: 1_000, drainTimeout: time.Minute}
	fullSizes = sizes{ingestFor: 5 * time.Second, sweep: []int{100_000, 1_000_000},
		emailRates: []int{50, 100, 200}, emailFor: 10 * time.Second, dispatch: 10_000, jobs: 10_000, drainTimeout: 10 * time.Minute}
)

// CheckOnly validates --only's names.
func CheckOnly(only []string) error {
	for _, o := range only {
		if !slices.Contains(Groups, o) {
			return fmt.Errorf("--only %q: no such row; use one or more of %s, separated by commas", o, strings.Join(Groups, ", "))
		}
	}
	return nil
}

// Run measures the rows cfg picks. It returns an error only when a row
// could not be measured; a missed target is a row with Met false.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("bench: no database: set DATABASE_URL")
	}
	if err := CheckOnly(cfg.Only); err != nil {
		return nil, err
	}
	r := &runner{start: time.Now(), cfg: cfg, sizes: fullSizes, logger: cfg.Logger}
	if cfg.Quick {
		r.sizes = quickSizes
	}
	for _, n := range cfg.SweepCustomers {
		if n < 1000 || n%1000 != 0 {
			return nil, fmt.Errorf("--sweep-customers %d: want a multiple of 1,000 (exactly 10%% of them fire)", n)
		}
	}
	if len(cfg.SweepCustomers) > 0 {
		r.sizes.sweep = cfg.SweepCustomers
	}
	if r.cfg.Runs <= 0 {
		r.cfg.Runs = 3
		if cfg.Quick {
			r.cfg.Runs = 1
		}
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	m, err := machine(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	res := &Result{Machine: m, Quick: cfg.Quick, Runs: r.cfg.Runs, Database: redact(cfg.DatabaseURL)}
	steps := map[string]func(context.Context) ([]Row, error){
		GroupIngest: r.ingest, GroupSweep: r.sweep, GroupEventEmail: r.eventEmail,
		GroupDispatch: r.dispatch, GroupJobs: r.jobs,
	}
	for _, g := range Groups {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, g) {
			continue
		}
		rows, err := steps[g](ctx)
		if err != nil {
			return nil, fmt.Errorf("bench %s: %w (the row's schema is dropped; nothing else was touched)", g, err)
		}
		res.Rows = append(res.Rows, rows...)
	}
	res.Schemas = r.schemas
	res.Machine.LoadAfter = loadAverage()
	res.Seconds = time.Since(r.start).Seconds()
	return res, nil
}

// progress writes one line to cfg.Progress.
func (r *runner) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "bench: %5.1fs "+format+"\n", append([]any{time.Since(r.start).Seconds()}, args...)...)
	}
}

// measure runs base and ciclo alternately cfg.Runs times (baseline first)
// and returns the samples.
func (r *runner) measure(ctx context.Context, base func(context.Context) (float64, error),
	ciclo func(context.Context, int) (float64, map[string]float64, error),
) ([]sample, error) {
	var out []sample
	for i := range r.cfg.Runs {
		b, err := base(ctx)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		v, d, err := ciclo(ctx, i)
		if err != nil {
			return nil, err
		}
		out = append(out, sample{value: v, base: b, details: d})
	}
	return out, nil
}

// finish fills row's figures from the samples: medians, the ratio's median,
// lowest and highest, and whether the target minRatio (0: none) was met.
// lowerBetter marks latency rows, whose ratio is baseline ÷ ciclo.
func (r *runner) finish(row Row, samples []sample, lowerBetter bool, minRatio float64) Row {
	var vals, bases, ratios []float64
	for _, s := range samples {
		vals, bases = append(vals, s.value), append(bases, s.base)
		ratio := 0.0
		switch {
		case lowerBetter && s.value > 0:
			ratio = s.base / s.value
		case !lowerBetter && s.base > 0:
			ratio = s.value / s.base
		}
		ratios = append(ratios, ratio)
	}
	row.Value, row.BaselineValue, row.Ratio = median(vals), median(bases), median(ratios)
	row.RatioMin, row.RatioMax, row.Runs = slices.Min(ratios), slices.Max(ratios), len(samples)
	if minRatio > 0 {
		met := row.Ratio >= minRatio
		row.Met, row.Target = &met, fmt.Sprintf("ratio ≥ %.2g", minRatio)
	}
	if row.Details == nil && len(samples) > 0 {
		row.Details = medianDetails(samples)
	}
	row.PeakRSSMiB = float64(PeakRSS()) / (1 << 20)
	r.progress("%s (%s): %s %s vs %s %s: ratio %.2f (%.2f–%.2f over %d runs)%s; peak RSS %.0f MiB", row.Name, row.Size,
		num(row.Value), row.Unit, num(row.BaselineValue), row.Baseline, row.Ratio, row.RatioMin, row.RatioMax, row.Runs,
		metText(row.Met), row.PeakRSSMiB)
	return row
}

// medianDetails is the median of each detail over the samples.
func medianDetails(samples []sample) map[string]float64 {
	out := map[string]float64{}
	for k := range samples[0].details {
		var vs []float64
		for _, s := range samples {
			vs = append(vs, s.details[k])
		}
		out[k] = median(vs)
	}
	return out
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func metText(met *bool) string {
	switch {
	case met == nil:
		return ""
	case *met:
		return " (target met)"
	default:
		return " (TARGET MISSED)"
	}
}
