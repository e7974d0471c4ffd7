package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/worker"
)

// TestFireTxSeveralStages covers a rule with two stage actions: it logs
// both transitions, issues its coupon and queues its delivery once, and a
// second firing for the occurrence writes nothing.
func TestFireTxSeveralStages(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	rs, err := rules.Parse("r.yaml", []byte(`version: 1
rules:
  - name: jump
    on: promo
    actions:
      - stage: conversion
      - coupon: { percent: 5, expires_in: 7d }
      - stage: retention
      - webhook: { url: "https://crm.example.com/hook", secret: "s" }
`), rules.ParseOptions{})
	require.NoError(t, err)
	r := rs.Rule("jump")
	client, err := worker.NewClient(db.Pool, &worker.Config{Rules: rules.NewHolder(rs), InsertOnly: true, Schema: db.Schema})
	require.NoError(t, err)

	fire := func() *store.Fire {
		var f *store.Fire
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			st := store.New(tx)
			if _, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: "c-1", Type: "promo", OccurredAt: at, ReceivedAt: at}, "reach", rs.Version); err != nil {
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
	require.Equal(t, "retention", f.Transitions[len(f.Transitions)-1].To)
	require.Len(t, f.Coupons, 1)
	require.Len(t, f.Deliveries, 1)
	require.Equal(t, "webhook", f.Deliveries[0].Channel)
	require.Equal(t, 1, db.Count(t, "stage_transitions", "customer_id = 'c-1' AND rule = 'jump' AND from_stage = 'reach' AND to_stage = 'conversion'"))
	require.Equal(t, 1, db.Count(t, "stage_transitions", "customer_id = 'c-1' AND rule = 'jump' AND from_stage = 'conversion' AND to_stage = 'retention'"))
	require.Equal(t, 1, db.Count(t, "deliveries", "customer_id = 'c-1' AND channel = 'webhook' AND action->>'url' = 'https://crm.example.com/hook' AND (action->>'action_index')::int = 3"))

	require.Nil(t, fire(), "the same occurrence fires once")
	require.Equal(t, 1, db.Count(t, "rule_firings", "customer_id = 'c-1'"))
	require.Equal(t, 1, db.Count(t, "coupons", "customer_id = 'c-1'"))
	require.Equal(t, 1, db.Count(t, "deliveries", "customer_id = 'c-1'"))
	require.Equal(t, 1, db.Count(t, "river_job", "kind = 'ciclo.dispatch'"))
}
