package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/store"
)

// Batched dispatch. A sweep queues its deliveries in DispatchBatchArgs jobs
// of up to DispatchBatchSize: one job, one read and one write then cover
// many deliveries, which is what lets a campaign go out at SMTP speed
// rather than at the speed of one job and two statements per email.
//
// A batch job tries each delivery once. In the transaction that records the
// outcomes and completes the job, every delivery it leaves queued (a
// transient failure, quiet hours, not tried before the job's time ran out)
// gets a DispatchArgs job of its own, scheduled for its retry or for the
// end of its quiet hours, with what is left of its attempts. Retries,
// snoozes and the attempt budget are thus per delivery, as for a lone one.
const (
	// DispatchBatchSize is the most deliveries one batch job carries.
	DispatchBatchSize = 50
	// dispatchBatchEmails is how many of a batch job's emails are sent at
	// once; the SMTP connection pool bounds it further. A batch job's
	// webhooks go one at a time, so --webhook-workers bounds the calls to
	// receivers as it does for lone webhooks.
	dispatchBatchEmails = 8
	// dispatchBatchTimeout bounds a batch job: DispatchBatchSize sends over
	// a slow server. Deliveries not tried by then get jobs of their own.
	dispatchBatchTimeout = 10 * time.Minute
)

// getDispatches reads refs (see store.GetDispatches): a single delivery in
// the next coalesced round.
func (w *dispatcher) getDispatches(ctx context.Context, st *store.Store, refs []store.DeliveryRef) ([]*store.Dispatch, error) {
	if len(refs) != 1 {
		return st.GetDispatches(ctx, refs, w.now())
	}
	dp, err := w.reads.do(ctx, refs[0])
	return []*store.Dispatch{dp}, err
}

// finishDeliveries records outs: a single one in the next coalesced round.
func (w *dispatcher) finishDeliveries(ctx context.Context, st *store.Store, outs []store.Outcome) error {
	if len(outs) != 1 {
		return st.FinishDeliveries(ctx, outs)
	}
	_, err := w.writes.do(ctx, outs[0])
	return err
}

// record writes the outcomes of a single delivery's job (with those of the
// jobs running at the same moment) and tells River what to do next.
func (w *dispatcher) record(ctx context.Context, st *store.Store, job *rivertype.JobRow, todo []*sending) error {
	outs := outcomes(todo)
	if err := w.writeOutcomes(ctx, todo, func(ctx context.Context) error { return w.finishDeliveries(ctx, st, outs) }); err != nil {
		return err
	}
	w.noted(ctx, todo)
	var (
		retry []error
		wait  time.Duration
		fails int
	)
	for _, s := range todo {
		if s.snooze > 0 && (wait == 0 || s.snooze < wait) {
			wait = s.snooze
		}
		switch {
		case s.out == nil:
		case s.out.Status == store.DeliveryQueued && s.snooze == 0:
			d := s.dp.Delivery
			retry = append(retry, fmt.Errorf("send %s delivery %d: %w", d.Channel, d.ID, s.err))
		case s.out.Status == store.DeliveryFailed:
			fails++
		}
	}
	switch {
	case len(retry) > 0:
		return errors.Join(retry...)
	case wait > 0:
		return river.JobSnooze(wait)
	case fails == len(todo):
		return river.JobCancel(todo[0].err)
	}
	return nil
}

// recordBatch writes the outcomes of a batch job's deliveries, queues a job
// of its own for each delivery left queued, and completes the batch job,
// all in one transaction.
func (w *dispatcher) recordBatch(ctx context.Context, todo []*sending, complete func(context.Context, pgx.Tx) error) error {
	var later []river.InsertManyParams
	now := w.jobNow()
	for _, s := range todo {
		d := s.dp.Delivery
		if s.out != nil && s.out.Status != store.DeliveryQueued {
			continue
		}
		attempts := d.Attempts
		if s.out != nil && s.out.Attempted {
			attempts++
		}
		opts := &river.InsertOpts{MaxAttempts: max(jobs.DispatchMaxAttempts-attempts, 1)}
		switch {
		case s.snooze > 0:
			opts.ScheduledAt = now.Add(s.snooze)
		case s.out != nil && s.out.Attempted:
			opts.ScheduledAt = w.retry.NextRetry(&rivertype.JobRow{Attempt: attempts, AttemptedAt: &now,
				Errors: make([]rivertype.AttemptError, attempts-1)})
		}
		later = append(later, river.InsertManyParams{
			Args:       jobs.DispatchArgs{CustomerID: d.CustomerID, DeliveryID: d.ID, Channel: d.Channel},
			InsertOpts: opts,
		})
	}
	outs := outcomes(todo)
	err := w.writeOutcomes(ctx, todo, func(ctx context.Context) error {
		return w.recordBatchTx(ctx, outs, later, complete)
	})
	if err != nil {
		return fmt.Errorf("record the outcomes of a batch of %d deliveries: %w", len(todo), err)
	}
	w.noted(ctx, todo)
	return nil
}

// recordBatchTx is one try of recordBatch's transaction.
func (w *dispatcher) recordBatchTx(ctx context.Context, outs []store.Outcome, later []river.InsertManyParams,
	complete func(context.Context, pgx.Tx) error,
) error {
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		if err := store.New(tx).FinishDeliveries(ctx, outs); err != nil {
			return err
		}
		if len(later) > 0 {
			client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
			if err != nil {
				return err
			}
			if _, err := client.InsertManyTx(ctx, tx, later); err != nil {
				return fmt.Errorf("queue %d deliveries of the batch on their own: %w", len(later), err)
			}
		}
		return complete(ctx, tx)
	})
}

// outcomes lists the outcomes todo has to record, each naming its delivery.
func outcomes(todo []*sending) []store.Outcome {
	var outs []store.Outcome
	for _, s := range todo {
		if s.out != nil {
			o := *s.out
			o.Delivery = store.DeliveryRef{CustomerID: s.dp.Delivery.CustomerID, ID: s.dp.Delivery.ID}
			outs = append(outs, o)
		}
	}
	return outs
}

// deliveryRefs are the deliveries a batch job names, as the store takes them.
func deliveryRefs(a jobs.DispatchBatchArgs) []store.DeliveryRef {
	out := make([]store.DeliveryRef, len(a.Deliveries))
	for i, d := range a.Deliveries {
		out[i] = store.DeliveryRef{CustomerID: d.CustomerID, ID: d.ID}
	}
	return out
}
