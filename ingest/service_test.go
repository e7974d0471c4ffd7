package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/rules"
)

func newService(db *testdb.DB) *ingest.Service {
	rs := &rules.RuleSet{Version: "v1", Stages: []string{"reach"}}
	return ingest.NewService(&ingest.Config{Pool: db.Pool, Rules: func() *rules.RuleSet { return rs }})
}

// TestEvaluationJobAsRiverWritesIt: ingest writes an event's evaluate job
// itself, in the event's statement; the row must be the one River's
// InsertManyTx writes for the same args, or River would run it otherwise.
func TestEvaluationJobAsRiverWritesIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	res, err := newService(db).Ingest(ctx, []*ingest.Event{{CustomerID: "c1", Type: "signed_up"}}, ingest.Options{})
	require.NoError(t, err)

	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{})
	require.NoError(t, err)
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = client.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: jobs.EvaluateArgs{CustomerID: "c1", EventID: res[0].ID}}})
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	rows, err := db.Pool.Query(ctx, `
		SELECT to_jsonb(j) - 'id' - 'created_at' - 'scheduled_at', created_at <= now() AND scheduled_at <= now()
		FROM river_job j ORDER BY id`)
	require.NoError(t, err)
	type job struct {
		Row  map[string]any
		Sane bool
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[job])
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, got[1], got[0], "ingest's job row (first) differs from River's (second)")
	require.True(t, got[0].Sane, "created and scheduled now")
}

// TestIngestIsOneTransaction: the events of a call are stored with their
// jobs in one transaction that a reused key with another payload aborts
// whole, though the other events came before it in the pipeline.
func TestIngestIsOneTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	svc := newService(db)
	first := &ingest.Event{CustomerID: "c1", Type: "signed_up", IdempotencyKey: "k1"}
	_, err := svc.Ingest(ctx, []*ingest.Event{first}, ingest.Options{})
	require.NoError(t, err)

	tests := []struct {
		name   string
		events []*ingest.Event
		field  string
	}{
		{"ReusedKeyOfStoredEvent", []*ingest.Event{
			{CustomerID: "c0", Type: "signed_up", IdempotencyKey: "k2"},
			{CustomerID: "c1", Type: "order_placed", IdempotencyKey: "k1"},
		}, "[1].idempotency_key"},
		{"ReusedKeyInTheCall", []*ingest.Event{
			{CustomerID: "c2", Type: "signed_up", IdempotencyKey: "k3"},
			{CustomerID: "c2", Type: "order_placed", IdempotencyKey: "k3"},
		}, "[1].idempotency_key"},
		{"BatchOfOne", []*ingest.Event{
			{CustomerID: "c1", Type: "order_placed", IdempotencyKey: "k1"},
		}, "[0].idempotency_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.Ingest(ctx, tt.events, ingest.Options{Batch: true})
			var fe *ingest.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tt.field, fe.Field)
			require.Equal(t, 1, db.Count(t, "events", ""), "nothing of the call is stored")
			require.Equal(t, 1, db.Count(t, "customers", ""))
			require.Equal(t, 1, db.Count(t, "river_job", ""))
		})
	}

	again, err := svc.Ingest(ctx, []*ingest.Event{first}, ingest.Options{})
	require.NoError(t, err)
	require.True(t, again[0].Duplicate)
	require.Equal(t, 1, db.Count(t, "river_job", ""), "a duplicate queues no job")
}

// TestIngestNotifiesRiver: a worker waiting on the evaluate queue hears of
// a new event's job at commit (River's insert notification), instead of
// at its next poll.
func TestIngestNotifiesRiver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	conn, err := pgx.Connect(ctx, db.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `LISTEN "`+db.Schema+`.river_insert"`)
	require.NoError(t, err)

	_, err = newService(db).Ingest(ctx, []*ingest.Event{{CustomerID: "c1", Type: "signed_up"}}, ingest.Options{})
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := conn.WaitForNotification(wctx)
	require.NoError(t, err)
	require.JSONEq(t, `{"queue": "`+jobs.QueueEvaluate+`"}`, n.Payload)
}
