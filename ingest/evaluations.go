package ingest

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/store"
)

// EnqueueEvaluations queues, in tx, the evaluate jobs of events recorded
// in tx: those Ingest stores, and the ones ciclo records itself (points
// granted or expired, coupons expired). An event id of 0 (nothing stored)
// is skipped. Every event is evaluated through this one queueing step.
func EnqueueEvaluations(ctx context.Context, tx pgx.Tx, enq Enqueuer, evs []store.EventRef) error {
	inserts := make([]river.InsertManyParams, 0, len(evs))
	for _, e := range evs {
		if e.ID != 0 {
			inserts = append(inserts, river.InsertManyParams{Args: jobs.EvaluateArgs{CustomerID: e.CustomerID, EventID: e.ID}})
		}
	}
	if len(inserts) == 0 {
		return nil
	}
	if _, err := enq.InsertManyTx(ctx, tx, inserts); err != nil {
		return fmt.Errorf("enqueue evaluation of %d events: %w", len(inserts), err)
	}
	return nil
}
