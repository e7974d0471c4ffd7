package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	gomail "github.com/wneessen/go-mail"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/internal/smtptest"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/templates"
	"github.com/ciclohq/ciclo/unsubscribe"
	"github.com/ciclohq/ciclo/worker"
)

// benchEmails is how many emails each path sends per iteration.
const benchEmails = 2000

// BenchmarkDispatch compares, in one run, ciclo's full dispatch path with
// raw go-mail sending the same rendered messages over one reused connection.
// ciclo's path: queued delivery rows and their River dispatch jobs; the
// worker loads the deliveries and customers, checks suppression, quiet hours
// and the frequency cap, renders, sends through the pooled SMTP channel and
// records the outcomes. Each path has its own smtptest server. The ciclo
// time runs from the commit that makes the jobs available until every
// delivery row says sent. DESIGN.md's target: ratio ≥ 0.5.
//
// Campaign queues the emails as a sweep does, DispatchBatchSize to a job;
// PerEvent as event rules do, one job per email. Each runs without and with
// a frequency cap and quiet hours configured. Besides the rates and their
// ratio it reports CPU per email of this process (ciclo's workers, both
// SMTP ends) and of its Postgres backends, over the ciclo phase.
//
//	go test ./worker -run '^$' -bench Dispatch -benchtime 3x
func BenchmarkDispatch(b *testing.B) {
	for _, shape := range []string{"Campaign", "PerEvent"} {
		for _, bc := range []struct {
			name     string
			defaults string
		}{
			{"NoCap", ""},
			{"Cap", "defaults:\n  frequency_cap: { max: 3, per: 7d }\n  quiet_hours: \"23:59-00:00\"\n"},
		} {
			b.Run(shape+"/"+bc.name, func(b *testing.B) {
				benchDispatch(b, bc.defaults, shape == "Campaign")
			})
		}
	}
}

func benchDispatch(b *testing.B, defaults string, campaign bool) {
	ctx := context.Background()
	db := testdb.New(b)
	rawSrv, cicloSrv := smtptest.Start(b), smtptest.Start(b)
	logger := slog.New(slog.DiscardHandler)

	rs, err := rules.Parse("bench.yaml", []byte("version: 1\n"+defaults+`rules:
  - name: bench
    on: bench
    actions:
      - email: { template: welcome, subject: "Welcome to our store" }
`), rules.ParseOptions{})
	require.NoError(b, err)
	tset, err := templates.New("")
	require.NoError(b, err)
	email, err := channels.NewSMTP(&channels.SMTPConfig{URL: cicloSrv.URL})
	require.NoError(b, err)
	defer email.Close()
	signer := unsubscribe.NewSigner("bench-secret", "https://shop.example")
	client, err := worker.NewClient(db.Pool, &worker.Config{
		Rules:  rules.NewHolder(rs),
		Logger: logger,
		Schema: db.Schema,
		Now:    func() time.Time { return time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC) },
		Dispatch: &worker.DispatchConfig{
			Email: email, Webhook: channels.NewWebhook(&channels.WebhookConfig{}), Templates: tset,
			Unsubscribe: signer, From: "Shop <shop@example.com>",
		},
	})
	require.NoError(b, err)
	require.NoError(b, client.Start(ctx))
	defer func() { require.NoError(b, client.Stop(ctx)) }()

	// The raw path sends exactly what ciclo renders.
	data := templates.SampleData()
	data.Coupon, data.Event = nil, nil
	rendered, err := tset.Render("welcome", "Welcome to our store", data)
	require.NoError(b, err)
	host, port, err := net.SplitHostPort(rawSrv.Addr)
	require.NoError(b, err)
	p, err := strconv.Atoi(port)
	require.NoError(b, err)

	var cicloTotal, rawTotal, selfTotal, dbTotal time.Duration
	for i := 0; i < b.N; i++ {
		// ciclo: queue the deliveries and their jobs, then time from commit
		// until every delivery is recorded as sent.
		b.StopTimer()
		prefix := fmt.Sprintf("b%d-", i)
		_, err := db.Pool.Exec(ctx, `INSERT INTO customers (id, email, name, stage, created_at)
			SELECT $1 || g, $1 || g || '@example.com', 'Customer ' || g, 'reach', now()
			FROM generate_series(1, $2) g`, prefix, benchEmails)
		require.NoError(b, err)
		tx, err := db.Pool.Begin(ctx)
		require.NoError(b, err)
		customers := make([]*store.Customer, benchEmails)
		for n := range customers {
			id := prefix + strconv.Itoa(n+1)
			customers[n] = &store.Customer{ID: id, Email: id + "@example.com", Name: "Customer " + strconv.Itoa(n+1), Stage: "reach"}
		}
		if campaign {
			require.NoError(b, worker.FireManyTx(ctx, tx, client, rs.Version, rs.Rules[0], customers, "bench", time.Now()))
		} else {
			for _, c := range customers {
				_, err := worker.FireTx(ctx, tx, client, rs.Version, rs.Rules[0], c, "bench", 0, time.Now())
				require.NoError(b, err)
			}
		}
		b.StartTimer()
		cpu0 := sampleCPU()
		start := time.Now()
		require.NoError(b, tx.Commit(ctx))
		cicloSrv.WaitMessages(b, benchEmails*(i+1), time.Minute)
		for db.Count(b, "deliveries", "status = 'sent' AND customer_id LIKE $1", prefix+"%") < benchEmails {
			time.Sleep(time.Millisecond)
		}
		cicloTotal += time.Since(start)
		self, dbCPU := sampleCPU().since(cpu0)
		selfTotal, dbTotal = selfTotal+self, dbTotal+dbCPU
		require.Equal(b, 0, db.Count(b, "deliveries", "status <> 'sent' AND customer_id LIKE $1", prefix+"%"))

		// raw go-mail over one reused connection.
		start = time.Now()
		mc, err := gomail.NewClient(host, gomail.WithPort(p), gomail.WithTLSPolicy(gomail.NoTLS))
		require.NoError(b, err)
		require.NoError(b, mc.DialWithContext(ctx))
		for n := 1; n <= benchEmails; n++ {
			id := prefix + strconv.Itoa(n)
			msg := gomail.NewMsg()
			require.NoError(b, msg.FromFormat("Shop", "shop@example.com"))
			require.NoError(b, msg.AddToFormat("Customer "+strconv.Itoa(n), id+"@example.com"))
			msg.Subject(rendered.Subject)
			msg.SetMessageIDWithValue("raw-" + id + "@ciclo")
			msg.SetDate()
			msg.SetGenHeader("List-Unsubscribe", "<"+signer.URL(id, id+"@example.com")+">")
			msg.SetGenHeader("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
			msg.SetBodyString(gomail.TypeTextPlain, rendered.Text)
			msg.AddAlternativeString(gomail.TypeTextHTML, rendered.HTML)
			require.NoError(b, mc.Send(msg))
		}
		require.NoError(b, mc.Close())
		rawTotal += time.Since(start)
	}
	sent := float64(benchEmails * b.N)
	cicloRate, rawRate := sent/cicloTotal.Seconds(), sent/rawTotal.Seconds()
	selfPer, dbPer := float64(selfTotal.Microseconds())/sent, float64(dbTotal.Microseconds())/sent
	b.ReportMetric(cicloRate, "ciclo_msg/s")
	b.ReportMetric(rawRate, "raw_msg/s")
	b.ReportMetric(cicloRate/rawRate, "ratio")
	b.ReportMetric(selfPer, "ciclo_cpu_us/msg")
	b.ReportMetric(dbPer, "db_cpu_us/msg")
	b.Logf("dispatch of %d emails ×%d: ciclo %.0f msg/s, raw go-mail %.0f msg/s, ratio %.2f (target ≥ 0.5); CPU per email: this process %.0f µs, its Postgres backends %.0f µs",
		benchEmails, b.N, cicloRate, rawRate, cicloRate/rawRate, selfPer, dbPer)
}
