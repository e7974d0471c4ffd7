package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/store"
)

// Defaults for coupon expiry.
const (
	// CouponExpiryIntervalDefault is how often expired coupons are looked for.
	CouponExpiryIntervalDefault = 5 * time.Minute
	// couponExpiryBatch is how many coupons one transaction reports.
	couponExpiryBatch = 1000
)

// CouponExpiryWorker turns coupons that expired unredeemed into
// coupon_expired events (properties: code, rule, kind, value, expires_at),
// which event rules can react to, and refreshes the customers'
// coupon_expires_at. Each coupon is reported once: the event is idempotent
// on the code and the coupon is marked in the same transaction.
type CouponExpiryWorker struct {
	river.WorkerDefaults[jobs.CouponExpiryArgs]

	pool   *pgxpool.Pool
	now    Clock
	logger *slog.Logger
}

// Work reports every coupon expired by now, in batches.
func (w *CouponExpiryWorker) Work(ctx context.Context, _ *river.Job[jobs.CouponExpiryArgs]) error {
	client := river.ClientFromContext[pgx.Tx](ctx)
	total := 0
	for {
		n, err := w.batch(ctx, client)
		if err != nil {
			return err
		}
		total += n
		if n < couponExpiryBatch {
			break
		}
	}
	if total > 0 {
		w.logger.InfoContext(ctx, "coupon expiry: reported expired coupons", slog.Int("num_coupons", total))
	}
	return nil
}

func (w *CouponExpiryWorker) batch(ctx context.Context, client *river.Client[pgx.Tx]) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		st := store.New(tx)
		now := w.now()
		cs, err := st.ExpireCoupons(ctx, now, couponExpiryBatch)
		if err != nil || len(cs) == 0 {
			return err
		}
		n = len(cs)
		seen := map[string]bool{}
		var ids []string
		for _, c := range cs {
			if !seen[c.CustomerID] {
				seen[c.CustomerID] = true
				ids = append(ids, c.CustomerID)
			}
		}
		if err := st.RefreshCouponExpiry(ctx, ids, now); err != nil {
			return err
		}
		evs, err := st.InsertCouponExpiredEvents(ctx, cs, now)
		if err != nil || len(evs) == 0 {
			return err
		}
		return ingest.EnqueueEvaluations(ctx, tx, client, evs)
	})
	if err != nil {
		return 0, fmt.Errorf("report expired coupons: %w", err)
	}
	return n, nil
}
