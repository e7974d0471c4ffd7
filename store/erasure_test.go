package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
)

// TestEraseCustomer erases a customer with history in every table and then
// searches every row of every table of the schema for the person's email
// and name.
func TestEraseCustomer(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	const (
		id    = "guest:ana.erasable@example.com"
		email = "Ana.Erasable@example.com"
		name  = "Ana Erasable-Person"
	)
	st := store.New(db.Pool)
	_, err := st.IngestEvent(ctx, &store.NewEvent{CustomerID: id, Type: "order_placed", IdempotencyKey: "o-1",
		OccurredAt: at, ReceivedAt: at, IsOrder: true, OrderTotal: 42, Email: email, Name: name,
		Properties: map[string]any{"total": 42, "email": email, "billing": map[string]any{"name": name}},
		Attributes: map[string]any{"nickname": name}}, "reach", "v1")
	require.NoError(t, err)
	_, err = st.IngestEvent(ctx, &store.NewEvent{CustomerID: "other", Type: "signed_up", OccurredAt: at, ReceivedAt: at,
		Email: "keep@example.com", Name: "Kept Person"}, "reach", "v1")
	require.NoError(t, err)
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := db.Pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	exec(`INSERT INTO rule_firings (customer_id, rule, occurrence, rule_set_version) VALUES ($1, 'first-order', 'e1', 'v1')`, id)
	exec(`INSERT INTO coupons (code, customer_id, rule, firing_id, kind, value) VALUES ('CIC-ERASE1', $1, 'first-order', 1, 'percent', 10)`, id)
	exec(`INSERT INTO deliveries (customer_id, firing_id, rule, channel, status, response) VALUES ($1, 1, 'first-order', 'email', 'sent', '/var/outbox/1-delivery.eml')`, id)
	exec(`INSERT INTO deliveries (customer_id, firing_id, rule, channel, status, response, last_error) VALUES ($1, 1, 'first-order', 'webhook', 'failed', $2, $2)`, id, "250 2.0.0 queued for <"+email+">")
	exec(`INSERT INTO suppressions (email, reason) VALUES (lower($1), 'bounced')`, email)
	exec(`INSERT INTO river_job (args, kind, max_attempts, queue) VALUES (jsonb_build_object('customer_id', $1::text), 'ciclo.evaluate', 25, 'default')`, id)
	// Sweep dispatch batches name several customers' deliveries: one shared
	// with another customer, one of the erased customer's alone.
	exec(`INSERT INTO river_job (args, kind, max_attempts, queue) VALUES
		(jsonb_build_object('channel', 'email', 'deliveries', jsonb_build_array(jsonb_build_object('customer_id', $1::text, 'id', 1), jsonb_build_object('customer_id', 'other', 'id', 7))), 'ciclo.dispatch_batch', 25, 'email'),
		(jsonb_build_object('channel', 'email', 'deliveries', jsonb_build_array(jsonb_build_object('customer_id', $1::text, 'id', 2))), 'ciclo.dispatch_batch', 25, 'email')`, id)
	_, err = st.GrantPoints(ctx, []store.PointsGrantReq{{CustomerID: id, Amount: 10, Reason: "first order", GrantedAt: at, Key: "p"}})
	require.NoError(t, err)

	// A later stage and a fold: the report rollups hold the customer's stage
	// span and the fold's log the rows written after it.
	exec(`INSERT INTO stage_transitions (customer_id, from_stage, to_stage, occurred_at) VALUES ($1, 'reach', 'conversion', $2)`, id, at.Add(time.Minute))
	_, err = store.FoldReportsTx(ctx, db.Pool, store.RollupConfig{ConversionWindow: 30 * 24 * time.Hour, AttributionWindow: 7 * 24 * time.Hour,
		OrderTypes: []string{"order_placed"}, ScoreTypes: []string{"nps_answered"}})
	require.NoError(t, err)
	require.NotZero(t, db.Count(t, "report_stage_spans", "customer_id = $1", id))
	exec(`INSERT INTO stage_transitions (customer_id, from_stage, to_stage, occurred_at) VALUES ($1, 'conversion', 'retention', $2)`, id, at.Add(2*time.Minute))
	require.NotZero(t, db.Count(t, "report_dirty", "customer_id = $1", id))

	var erased store.Erased
	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var err error
		erased, err = st.WithTx(tx).EraseCustomer(ctx, id, at.Add(time.Hour))
		return err
	}))
	require.Equal(t, []string{"/var/outbox/1-delivery.eml"}, erased.OutboxFiles)
	require.Equal(t, store.AnonymousID(id), erased.AnonymousID)

	rows, err := db.Pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'`, db.Schema)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Contains(t, tables, "points_entries")
	for _, table := range tables {
		for _, needle := range []string{"ana.erasable", "Erasable-Person", id} {
			n := db.Count(t, pgx.Identifier{table}.Sanitize()+" AS r", "r::text ILIKE '%' || $1 || '%'", needle)
			require.Zero(t, n, "table %s still holds %q", table, needle)
		}
	}
	// The aggregate facts and history stay, under the anonymous id.
	require.Equal(t, 1, db.Count(t, "customers", "id = $1 AND orders_count = 1 AND total_spent_cents = 4200 AND email = '' AND name = '' AND erased_at IS NOT NULL", erased.AnonymousID))
	for _, table := range []string{"events", "rule_firings", "coupons", "deliveries", "stage_transitions", "points_lots", "points_entries"} {
		require.NotZero(t, db.Count(t, table, "customer_id = $1", erased.AnonymousID), table)
	}
	require.Equal(t, 1, db.Count(t, "events", "customer_id = $1 AND properties = '{\"total\": 42}'", erased.AnonymousID))
	// The address is suppressed by hash, as the Go side computes it.
	require.Equal(t, 1, db.Count(t, "suppressions", "email = $1 AND reason = 'erased'", store.ErasedAddressHash(email)))
	require.Zero(t, db.Count(t, "river_job", "args->>'customer_id' = $1", id))
	require.Equal(t, 1, db.Count(t, "river_job", `kind = 'ciclo.dispatch_batch'`), "the batch of the erased customer alone is dropped")
	require.Equal(t, 1, db.Count(t, "river_job", `args->'deliveries' = '[{"id": 7, "customer_id": "other"}]'`), "the other customer's delivery stays queued")
	// Others are untouched.
	require.Equal(t, 1, db.Count(t, "customers", "id = 'other' AND email = 'keep@example.com'"))

	var missing store.Erased
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var err error
		missing, err = st.WithTx(tx).EraseCustomer(ctx, id, at)
		return err
	})
	require.ErrorIs(t, err, store.ErrCustomerNotFound)
	require.Empty(t, missing.AnonymousID)
}
