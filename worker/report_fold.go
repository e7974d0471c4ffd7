package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/report"
	"github.com/ciclohq/ciclo/store"
)

// ReportFoldIntervalDefault is how often the report rollups are folded: a
// report reads raw rows for what was written since, so the interval bounds
// the report's raw tail, not its correctness.
const ReportFoldIntervalDefault = 10 * time.Minute

// ReportFoldWorker keeps the report rollups up (docs/metrics.md
// "Rollups"): one REPEATABLE READ transaction folds the rows written since
// the last run; the first run folds the whole history.
type ReportFoldWorker struct {
	river.WorkerDefaults[jobs.ReportFoldArgs]

	pool   *pgxpool.Pool
	logger *slog.Logger
}

// Work folds the rows written since the last fold.
func (w *ReportFoldWorker) Work(ctx context.Context, _ *river.Job[jobs.ReportFoldArgs]) error {
	t0 := time.Now()
	st, err := store.FoldReportsTx(ctx, w.pool, report.RollupConfig())
	if err != nil {
		return fmt.Errorf("report fold: %w", err)
	}
	if st.Written > 0 || st.Full {
		w.logger.InfoContext(ctx, "report fold: rollups up to date", slog.Bool("full", st.Full),
			slog.Int64("num_written", st.Written), slog.Int("num_periods", st.Periods), slog.Duration("took", time.Since(t0)))
	}
	return nil
}

// Timeout lets the first fold of a long history run past the default job
// timeout.
func (w *ReportFoldWorker) Timeout(*river.Job[jobs.ReportFoldArgs]) time.Duration { return time.Hour }

// reportFoldPeriodicJob folds every ReportFoldInterval and once at start.
func reportFoldPeriodicJob(cfg *Config) *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(cfg.ReportFoldInterval),
		func() (river.JobArgs, *river.InsertOpts) { return jobs.ReportFoldArgs{}, nil },
		&river.PeriodicJobOpts{ID: "ciclo.report_fold", RunOnStart: true})
}
