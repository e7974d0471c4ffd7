package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/internal/smtptest"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/templates"
	"github.com/ciclohq/ciclo/unsubscribe"
	"github.com/ciclohq/ciclo/worker"
)

// TestErasureDuringSend erases a customer while the dispatch of its email
// has read the delivery and is about to hand the message to SMTP (held at
// a hook right before the send), then lets the dispatch go on: nothing may
// reach the erased address at the real SMTP server, and the delivery, now
// the anonymous customer's, is recorded as suppressed because of the
// erasure.
func TestErasureDuringSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	sink := smtptest.Start(t)
	const id, addr = "erase-race", "erase.race@example.com"

	rs, err := rules.Parse("race.yaml", []byte(`version: 1
rules:
  - name: hello
    on: hello
    actions:
      - email: { template: welcome, subject: "Welcome" }
`), rules.ParseOptions{})
	require.NoError(t, err)
	tset, err := templates.New("")
	require.NoError(t, err)
	email, err := channels.NewSMTP(&channels.SMTPConfig{URL: sink.URL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = email.Close() })

	reached, release := make(chan struct{}), make(chan struct{})
	dc := &worker.DispatchConfig{
		Email: email, Webhook: channels.NewWebhook(&channels.WebhookConfig{}), Templates: tset,
		Unsubscribe: unsubscribe.NewSigner("race-secret", "https://shop.example"), From: "Shop <shop@example.com>",
	}
	worker.SetBeforeSend(dc, func(ctx context.Context, to string) {
		if to == addr {
			close(reached)
			<-release
		}
	})
	client, err := worker.NewClient(db.Pool, &worker.Config{Rules: rules.NewHolder(rs), Logger: slog.New(slog.DiscardHandler),
		Schema: db.Schema, Dispatch: dc})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.Background())) })

	_, err = db.Pool.Exec(ctx, `INSERT INTO customers (id, email, name, stage, created_at) VALUES ($1, $2, 'Erin Race', 'reach', now())`, id, addr)
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		_, err := worker.FireTx(ctx, tx, client, rs.Version, rs.Rules[0],
			&store.Customer{ID: id, Email: addr, Name: "Erin Race", Stage: "reach"}, "race", 0, time.Now())
		return err
	}))

	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the dispatch never reached the send")
	}
	// The erasure commits while the dispatch holds the delivery it read.
	erased := make(chan error, 1)
	go func() {
		erased <- pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			_, err := store.New(tx).EraseCustomer(ctx, id, time.Now())
			return err
		})
	}()
	select {
	case err := <-erased:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the erasure did not commit while the dispatch was held before its send")
	}
	close(release)

	// The outcome is recorded after the send would have ended.
	anon := store.AnonymousID(id)
	var status, lastError string
	require.Eventually(t, func() bool {
		err := db.Pool.QueryRow(ctx, `SELECT status, last_error FROM deliveries WHERE customer_id = $1`, anon).Scan(&status, &lastError)
		return (err == nil && status != store.DeliveryQueued) || len(sink.Messages()) > 0
	}, 30*time.Second, 10*time.Millisecond, "the delivery was neither recorded nor sent")
	for _, m := range sink.Messages() {
		for _, to := range m.To {
			require.NotContains(t, strings.ToLower(to), addr, "an email reached the erased address")
		}
	}
	require.Empty(t, sink.Messages())
	require.Equal(t, store.DeliverySuppressed, status)
	require.Contains(t, lastError, "erased")
	require.Zero(t, db.Count(t, "deliveries", "customer_id = $1", id))
}
