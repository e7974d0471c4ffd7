package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/worker"
)

// TestHoldout fires a rule with a holdout for 400 customers in one batch:
// exactly the customers the rule holds out get a firing marked holdout and
// nothing else; the others get the stage, coupon and email.
func TestHoldout(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	rs, err := rules.Parse("r.yaml", []byte(`version: 1
rules:
  - name: win-back
    schedule: "@daily"
    cooldown: 30d
    holdout: 25%
    actions:
      - stage: at_risk
      - coupon: { percent: 20, expires_in: 30d }
      - email: { template: win_back }
`), rules.ParseOptions{})
	require.NoError(t, err)
	r := rs.Rule("win-back")
	client, err := worker.NewClient(db.Pool, &worker.Config{Rules: rules.NewHolder(rs), InsertOnly: true, Schema: db.Schema})
	require.NoError(t, err)

	const n = 400
	var customers []*store.Customer
	held := map[string]bool{}
	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		st := store.New(tx)
		for i := range n {
			id := fmt.Sprintf("c-%03d", i)
			if _, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: id, Type: "signed_up", OccurredAt: at, ReceivedAt: at,
				Email: id + "@example.com"}, "reach", rs.Version); err != nil {
				return err
			}
			c, err := st.GetCustomer(ctx, id)
			if err != nil {
				return err
			}
			customers = append(customers, c)
			held[id] = r.HeldOut(id)
		}
		return worker.FireManyTx(ctx, tx, client, rs.Version, r, customers, "window:1", at)
	}))
	nHeld := 0
	for _, h := range held {
		if h {
			nHeld++
		}
	}
	require.InDelta(t, n/4, nHeld, 40, "about a quarter held out")
	require.Equal(t, n, db.Count(t, "rule_firings", "rule = 'win-back'"), "every match is recorded")
	require.Equal(t, nHeld, db.Count(t, "rule_firings", "rule = 'win-back' AND holdout"))
	for id, h := range held {
		want := 1
		if h {
			want = 0
		}
		require.Equal(t, h, db.Count(t, "rule_firings", "customer_id = $1 AND holdout", id) == 1, id)
		require.Equal(t, want, db.Count(t, "coupons", "customer_id = $1", id), id)
		require.Equal(t, want, db.Count(t, "deliveries", "customer_id = $1", id), id)
		require.Equal(t, want, db.Count(t, "stage_transitions", "customer_id = $1 AND to_stage = 'at_risk'", id), id)
	}
	require.Equal(t, n-nHeld, db.Count(t, "customers", "stage = 'at_risk'"))
}
