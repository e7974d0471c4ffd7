package worker

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
)

// FireManyTx fires r for each of customers in tx and enqueues all their
// deliveries at once, in batches, the way a sweep does. For benchmarks.
func FireManyTx(ctx context.Context, tx pgx.Tx, client *river.Client[pgx.Tx], version string, r *rules.Rule,
	customers []*store.Customer, occurrence string, now time.Time,
) error {
	var ds []*store.Delivery
	for _, c := range customers {
		res, err := fire(ctx, tx, version, r, c, occurrence, 0, now)
		if err != nil {
			return err
		}
		if res != nil {
			ds = append(ds, res.Deliveries...)
		}
	}
	_, err := client.InsertManyFastTx(ctx, tx, dispatchJobs(ds))
	return err
}

// RiverConfig is the River configuration NewClient builds from cfg.
func RiverConfig(pool *pgxpool.Pool, cfg *Config) (*river.Config, error) {
	return riverConfig(pool, cfg)
}
