package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
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
	reached, release := make(chan struct{}), make(chan struct{})
	db, sink := startEraseRace(t, smtptest.Options{}, func(ctx context.Context, to string) {
		if to == eraseRaceAddr {
			close(reached)
			<-release
		}
	})
	const id, addr = eraseRaceID, eraseRaceAddr

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

const eraseRaceID, eraseRaceAddr = "erase-race", "erase.race@example.com"

// startEraseRace starts a worker whose emails go to a real SMTP server
// started with opts, with beforeSend called before each send's guard, and
// fires a rule that emails the customer eraseRaceID at eraseRaceAddr.
func startEraseRace(t *testing.T, opts smtptest.Options, beforeSend func(context.Context, string)) (*testdb.DB, *smtptest.Server) {
	t.Helper()
	ctx := context.Background()
	db := testdb.New(t)
	sink := smtptest.StartWithOptions(t, opts)
	const id, addr = eraseRaceID, eraseRaceAddr

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

	dc := &worker.DispatchConfig{
		Email: email, Webhook: channels.NewWebhook(&channels.WebhookConfig{}), Templates: tset,
		Unsubscribe: unsubscribe.NewSigner("race-secret", "https://shop.example"), From: "Shop <shop@example.com>",
	}
	if beforeSend != nil {
		worker.SetBeforeSend(dc, beforeSend)
	}
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
	return db, sink
}

// TestErasureWaitsForSendInFlight erases a customer while its email is at
// the SMTP server (the server holds its reply to DATA): the erasure waits
// for the send's guard, so it commits after the send is recorded, and then
// no table holds the address or the name, the sent delivery included.
func TestErasureWaitsForSendInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	inFlight, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	db, sink := startEraseRace(t, smtptest.Options{OnData: func() {
		once.Do(func() { close(inFlight) })
		<-release
	}}, nil)

	select {
	case <-inFlight:
	case <-time.After(30 * time.Second):
		t.Fatal("the email never reached the SMTP server")
	}
	erased := make(chan error, 1)
	go func() {
		erased <- pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			_, err := store.New(tx).EraseCustomer(ctx, eraseRaceID, time.Now())
			return err
		})
	}()
	select {
	case err := <-erased:
		t.Fatalf("the erasure committed while its customer's email was in flight (err %v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-erased:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the erasure did not commit after the send ended")
	}
	require.Len(t, sink.WaitMessages(t, 1, 10*time.Second), 1, "the send that began before the erasure ends")
	anon := store.AnonymousID(eraseRaceID)
	require.Equal(t, 1, db.Count(t, "deliveries", "customer_id = $1 AND status = $2", anon, store.DeliverySent))
	for _, table := range []string{"customers", "deliveries", "events", "rule_firings"} {
		require.Zero(t, db.Count(t, table+" t", "strpos(lower(t::text), $1) > 0 OR strpos(t::text, 'Erin Race') > 0", eraseRaceAddr), table)
	}
}
