package worker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// CrashRescuesMax is how many times a job may be rescued (its worker died
// while running it: kill -9, out of memory, a lost machine) before it is
// cancelled instead of run again. The first death may have nothing to do
// with the job (a deploy); a job rescued this often is presumed to be what
// kills workers, and running it again would take down the next one. A
// panic does not count: River recovers it, records it and retries the job.
const CrashRescuesMax = 2

// rescuedError is the error River's rescuer records on a job it rescues.
const rescuedError = "Stuck job rescued by JobRescuer"

// crashGuard is River worker middleware that cancels a job rescued
// CrashRescuesMax times, with the reason in its errors, before it runs.
type crashGuard struct {
	river.MiddlewareDefaults
	logger *slog.Logger
}

var _ rivertype.WorkerMiddleware = (*crashGuard)(nil)

// Work runs the job unless it was rescued too often.
func (g *crashGuard) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	rescues := 0
	for _, e := range job.Errors {
		if e.Error == rescuedError {
			rescues++
		}
	}
	if rescues >= CrashRescuesMax {
		err := fmt.Errorf("job %d (%s) was running in a worker that died %d times (out of memory? see the log of the workers that stopped): "+
			"cancelled so that it cannot take down another; fix the rule or template it runs and retry it from the River UI",
			job.ID, job.Kind, rescues)
		g.logger.ErrorContext(ctx, "worker: cancelling a job that workers died running", slog.Int64("job_id", job.ID),
			slog.String("kind", job.Kind), slog.Int("rescues", rescues), slog.String("args", string(job.EncodedArgs)))
		return river.JobCancel(err)
	}
	return doInner(ctx)
}
