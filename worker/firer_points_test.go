package worker_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/worker"
)

// TestFireTxPoints covers a rule's points action: the lot is granted in
// the firing's transaction, keyed by the firing and action, with the rule,
// firing, reason, pending period and expiry recorded, and a points_granted
// event enqueued for evaluation; the same occurrence grants nothing more.
func TestFireTxPoints(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	rs, err := rules.Parse("r.yaml", []byte(`version: 1
rules:
  - name: loyal
    on: promo
    actions:
      - stage: retention
      - points: { amount: "customer.orders_count * 10 + 50", expires_in: 30d, pending_for: 2d, reason: "promo bonus" }
`), rules.ParseOptions{})
	require.NoError(t, err)
	r := rs.Rule("loyal")
	client, err := worker.NewClient(db.Pool, &worker.Config{Rules: rules.NewHolder(rs), InsertOnly: true, Schema: db.Schema})
	require.NoError(t, err)

	fire := func() *store.Fire {
		var f *store.Fire
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			st := store.New(tx)
			if _, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: "c-1", Type: "promo", OccurredAt: at, ReceivedAt: at,
				IdempotencyKey: "promo-1"}, "reach", rs.Version); err != nil {
				return err
			}
			c, err := st.GetCustomer(ctx, "c-1")
			if err != nil {
				return err
			}
			f, err = worker.FireTx(ctx, tx, client, rs.Version, r, c, "event:1", 1, at)
			return err
		}))
		return f
	}
	f := fire()
	require.NotNil(t, f)
	require.Len(t, f.Points, 1)
	key := "firing:" + itoa(f.Firing.ID) + ":1"
	require.Equal(t, 1, db.Count(t, "points_lots", "customer_id = 'c-1' AND idempotency_key = '"+key+"' AND amount = 50 AND remaining = 50"+
		" AND rule = 'loyal' AND reason = 'promo bonus' AND firing_id = "+itoa(f.Firing.ID)))
	var avail, expires time.Time
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT available_at, expires_at FROM points_lots WHERE customer_id = 'c-1'").Scan(&avail, &expires))
	require.True(t, avail.Equal(at.Add(2*day)), "available after pending_for: %s", avail)
	require.True(t, expires.Equal(at.Add(32*day)), "expires expires_in after it is available: %s", expires)
	require.Equal(t, 1, db.Count(t, "points_entries", "customer_id = 'c-1' AND kind = 'grant' AND amount = 50"))
	require.Equal(t, 1, db.Count(t, "events", "customer_id = 'c-1' AND type = 'points_granted' AND (properties->>'points')::int = 50 AND properties->>'rule' = 'loyal'"))
	require.Equal(t, 1, db.Count(t, "river_job", "kind = 'ciclo.evaluate'"))

	require.Nil(t, fire(), "the same occurrence fires once")
	require.Equal(t, 1, db.Count(t, "points_lots", "customer_id = 'c-1'"))
	require.Equal(t, 1, db.Count(t, "events", "customer_id = 'c-1' AND type = 'points_granted'"))
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
