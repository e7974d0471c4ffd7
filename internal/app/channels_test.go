package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/smtptest"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/message"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/worker"
)

// Secrets the webhook tests sign with: one named by the rule through
// ${CICLO_TEST_WEBHOOK_SECRET}, one the fallback (CICLO_WEBHOOK_SECRET).
const (
	ruleWebhookSecret     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	fallbackWebhookSecret = "fallback-secret"
)

var setEnvOnce sync.Once

// channelRules is the rules file of the channel tests; templates_dir points
// at overrides written next to it.
const channelRules = `version: 1
templates_dir: tpl
defaults:
  frequency_cap: { max: 2, per: 7d }
  quiet_hours: "21:00-08:00"
rules:
  - name: promo
    on: promo
    actions:
      - email: { template: promo, subject: "Hello {{.Customer.Name}}" }
  - name: vip
    on: vip
    frequency_cap: { max: 5, per: 7d }
    actions:
      - email: { template: promo, subject: "VIP news" }
  - name: receipt
    on: receipt
    transactional: true
    actions:
      - email: { template: promo, subject: "Your receipt" }
  - name: hook
    on: hook
    actions:
      - webhook: { url: "HOOK_URL", secret: "${CICLO_TEST_WEBHOOK_SECRET}" }
  - name: plain-hook
    on: plain_hook
    actions:
      - webhook: { url: "HOOK_URL" }
  - name: campaign-a
    schedule: "0 9 * * *"
    when: customer.attributes.segment == "campaign"
    cooldown: 1d
    actions:
      - email: { template: promo, subject: "Campaign A" }
  - name: campaign-b
    schedule: "0 9 * * *"
    when: customer.attributes.segment == "campaign"
    cooldown: 1d
    actions:
      - email: { template: promo, subject: "Campaign B" }
`

// testClock is a settable clock for quiet hours and caps.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// fastRetry retries failed jobs after 20 ms so retry tests stay quick.
type fastRetry struct{}

func (fastRetry) NextRetry(*rivertype.JobRow) time.Time { return time.Now().Add(20 * time.Millisecond) }

// hookServer is a webhook endpoint answering with a script of status codes
// (the last one repeats) and recording every request.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	body     string
	reqs     []hookRequest
}

type hookRequest struct {
	header http.Header
	body   []byte
}

func (h *hookServer) requests() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.reqs...)
}

type channelBundle struct {
	db    *testdb.DB
	smtp  *smtptest.Server
	hook  *hookServer
	app   *app.App
	clock *testClock
	url   string
}

// channelSetup runs ciclo on channelRules, with a promo template from the
// override directory, a clock set to start, SMTP to smtptest and webhooks to
// a local endpoint answering hookStatuses.
func channelSetup(t *testing.T, start time.Time, hookStatuses ...int) *channelBundle {
	t.Helper()
	return channelSetupWith(t, start, nil, hookStatuses...)
}

// channelSetupWith is channelSetup with a last word on the configuration.
func channelSetupWith(t *testing.T, start time.Time, configure func(*app.Config), hookStatuses ...int) *channelBundle {
	t.Helper()
	setEnvOnce.Do(func() { os.Setenv("CICLO_TEST_WEBHOOK_SECRET", ruleWebhookSecret) })
	b := &channelBundle{db: testdb.New(t), smtp: smtptest.Start(t), clock: &testClock{t: start}}
	if len(hookStatuses) == 0 {
		hookStatuses = []int{http.StatusOK}
	}
	b.hook = &hookServer{statuses: hookStatuses, body: `{"error":"bad payload"}`}
	b.hook.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.hook.mu.Lock()
		status := b.hook.statuses[min(len(b.hook.reqs), len(b.hook.statuses)-1)]
		b.hook.reqs = append(b.hook.reqs, hookRequest{header: r.Header.Clone(), body: body})
		b.hook.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, b.hook.body)
	}))
	t.Cleanup(b.hook.Close)

	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "tpl"), 0o755))
	files := map[string]string{
		"rules.yaml":     strings.ReplaceAll(channelRules, "HOOK_URL", b.hook.URL+"/hooks"),
		"tpl/promo.html": `<p>Override promo for {{.Customer.Name}}</p>`,
		"tpl/promo.txt":  `Override promo for {{.Customer.Name}}`,
	}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}

	ctx := context.Background()
	cfg := app.Config{
		DatabaseURL:       b.db.URL,
		RulesPath:         filepath.Join(dir, "rules.yaml"),
		APIToken:          token,
		Addr:              "127.0.0.1:0",
		SMTPURL:           b.smtp.URL,
		From:              "Shop <shop@example.com>",
		UnsubscribeMailto: "unsubscribe@example.com",
		WebhookSecret:     fallbackWebhookSecret,
		WebhookAllowHosts: []string{"127.0.0.1"},
		Migrate:           true,
		Now:               b.clock.Now,
		Logger:            slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Worker:            worker.Config{Schema: b.db.Schema, RetryPolicy: fastRetry{}},
	}
	if configure != nil {
		configure(&cfg)
	}
	a, err := app.New(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { require.NoError(t, a.Stop(context.Background())) })
	b.app, b.url = a, "http://"+a.Addr()
	return b
}

// event posts one event and requires 202.
func (b *channelBundle) event(t *testing.T, body string) {
	t.Helper()
	status, resp := post(t, b.url, token, body)
	require.Equal(t, http.StatusAccepted, status, resp)
}

// waitFor polls cond (a database condition) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// delivery is a delivery row as the tests check it.
type delivery struct {
	ID           int64
	Status       string
	Attempts     int
	LastError    string
	ProviderID   string
	ResponseCode *int
	Response     string
}

// waitDeliveries waits until the rule's deliveries for the customer number n
// and none is queued, and returns them in id order.
func (b *channelBundle) waitDeliveries(t *testing.T, customer, rule string, n int) []delivery {
	t.Helper()
	where := "customer_id = $1 AND rule = $2"
	waitFor(t, rule+" deliveries", func() bool {
		return b.db.Count(t, "deliveries", where, customer, rule) == n &&
			b.db.Count(t, "deliveries", where+" AND status = 'queued'", customer, rule) == 0
	})
	rows, err := b.db.Pool.Query(context.Background(), `SELECT id, status, attempts, last_error, provider_id, response_code, response
		FROM deliveries WHERE `+where+` ORDER BY id`, customer, rule)
	require.NoError(t, err)
	defer rows.Close()
	var out []delivery
	for rows.Next() {
		var d delivery
		require.NoError(t, rows.Scan(&d.ID, &d.Status, &d.Attempts, &d.LastError, &d.ProviderID, &d.ResponseCode, &d.Response))
		out = append(out, d)
	}
	require.NoError(t, rows.Err())
	return out
}

// noon is 12:00 UTC, outside quiet hours for a UTC customer.
var noon = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

var listURLRE = regexp.MustCompile(`<(https?://[^>]+)>`)

func TestChannels(t *testing.T) {
	t.Parallel()

	t.Run("UnsubscribeOneClick", func(t *testing.T) {
		t.Parallel()
		b := channelSetup(t, noon)
		b.event(t, `{"customer_id":"c-1","type":"promo","email":"ana@example.com","name":"Ana"}`)
		msg := b.smtp.WaitMessages(t, 1, 15*time.Second)[0]

		// Both parts, from the override directory, with the rule's subject.
		require.Equal(t, "multipart/alternative", msg.ContentType)
		require.Contains(t, msg.HTML, "<p>Override promo for Ana</p>")
		require.Contains(t, msg.Text, "Override promo for Ana")
		require.Equal(t, "Hello Ana", msg.Header.Get("Subject"))
		list := msg.Header.Get("List-Unsubscribe")
		require.Contains(t, list, "<mailto:unsubscribe@example.com?subject=unsubscribe>")
		require.Equal(t, "List-Unsubscribe=One-Click", msg.Header.Get("List-Unsubscribe-Post"))
		m := listURLRE.FindStringSubmatch(list)
		require.NotNil(t, m, list)
		require.Contains(t, msg.Text, m[1], "the text footer carries the same link")
		// The public URL defaults to localhost and the configured port (0 here).
		unsubURL := strings.Replace(m[1], "http://localhost:0", b.url, 1)

		// GET shows a confirmation page and changes nothing.
		resp, err := http.Get(unsubURL)
		require.NoError(t, err)
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, string(page), "Unsubscribe?")
		require.Equal(t, 0, b.db.Count(t, "suppressions", ""))

		// RFC 8058 one-click POST, as a mailbox provider sends it.
		resp, err = http.Post(unsubURL, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, 1, b.db.Count(t, "suppressions", "email = 'ana@example.com' AND reason = 'unsubscribed'"))
		require.Equal(t, 1, b.db.Count(t, "customers", "id = 'c-1' AND unsubscribed_at IS NOT NULL"))

		// A later firing is recorded as suppressed and nothing is sent.
		b.event(t, `{"customer_id":"c-1","type":"promo"}`)
		ds := b.waitDeliveries(t, "c-1", "promo", 2)
		require.Equal(t, "sent", ds[0].Status)
		require.Equal(t, "suppressed", ds[1].Status)
		require.Equal(t, 0, ds[1].Attempts)

		// Transactional mail still reaches an unsubscribed customer.
		b.event(t, `{"customer_id":"c-1","type":"receipt"}`)
		require.Equal(t, "sent", b.waitDeliveries(t, "c-1", "receipt", 1)[0].Status)
		waitJobs(t, b.db)
		msgs := b.smtp.Messages()
		require.Len(t, msgs, 2)
		require.Equal(t, "Your receipt", msgs[1].Header.Get("Subject"))
	})

	t.Run("SuppressionsAPI", func(t *testing.T) {
		t.Parallel()
		b := channelSetup(t, noon)
		call := func(method, path, body, auth string) (int, string) {
			req, err := http.NewRequest(method, b.url+path, strings.NewReader(body))
			require.NoError(t, err)
			if auth != "" {
				req.Header.Set("Authorization", "Bearer "+auth)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(out)
		}
		status, body := call("POST", "/v1/suppressions", `{"email":"Bo@Example.com","reason":"manual"}`, "")
		require.Equal(t, http.StatusUnauthorized, status, body)
		status, body = call("POST", "/v1/suppressions", `{"email":"not an address"}`, token)
		require.Equal(t, http.StatusUnprocessableEntity, status, body)
		status, body = call("POST", "/v1/suppressions", `{"email":"bo@example.com","reason":"spite"}`, token)
		require.Equal(t, http.StatusUnprocessableEntity, status, body)
		status, body = call("POST", "/v1/suppressions", `{"email":"bo@example.com","colour":"red"}`, token)
		require.Equal(t, http.StatusBadRequest, status, body)
		require.Contains(t, body, `unknown field \"colour\"`)

		status, body = call("POST", "/v1/suppressions", `{"email":"Bo@Example.com","reason":"manual"}`, token)
		require.Equal(t, http.StatusCreated, status, body)
		require.Contains(t, body, `"email":"bo@example.com"`)
		status, body = call("POST", "/v1/suppressions", `{"email":"bo@example.com","reason":"bounced"}`, token)
		require.Equal(t, http.StatusOK, status, body)
		require.Contains(t, body, `"reason":"manual"`, "the first reason is kept")
		status, body = call("GET", "/v1/suppressions/bo@example.com", "", token)
		require.Equal(t, http.StatusOK, status, body)

		b.event(t, `{"customer_id":"c-2","type":"promo","email":"bo@example.com","name":"Bo"}`)
		d := b.waitDeliveries(t, "c-2", "promo", 1)[0]
		require.Equal(t, "suppressed", d.Status)
		require.Contains(t, d.LastError, "manual")

		status, body = call("DELETE", "/v1/suppressions/bo@example.com", "", token)
		require.Equal(t, http.StatusNoContent, status, body)
		status, body = call("DELETE", "/v1/suppressions/bo@example.com", "", token)
		require.Equal(t, http.StatusNotFound, status, body)
		status, _ = call("GET", "/v1/suppressions/bo@example.com", "", token)
		require.Equal(t, http.StatusNotFound, status)

		b.event(t, `{"customer_id":"c-2","type":"promo"}`)
		require.Equal(t, "sent", b.waitDeliveries(t, "c-2", "promo", 2)[1].Status)
		require.Len(t, b.smtp.WaitMessages(t, 1, 15*time.Second), 1)
	})

	t.Run("SMTPTransientRetries", func(t *testing.T) {
		t.Parallel()
		b := channelSetup(t, noon)
		b.smtp.FailNext(451, "try again later", 2)
		b.event(t, `{"customer_id":"c-3","type":"promo","email":"cy@example.com","name":"Cy"}`)
		d := b.waitDeliveries(t, "c-3", "promo", 1)[0]
		waitJobs(t, b.db)
		require.Equal(t, "sent", d.Status)
		require.Equal(t, 3, d.Attempts)
		require.Equal(t, 3, b.smtp.Attempts())
		require.Len(t, b.smtp.Messages(), 1)
		require.Regexp(t, `^<delivery-`+strconv.FormatInt(d.ID, 10)+`\.[0-9a-f]{32}@example\.com>$`, d.ProviderID)
		require.Equal(t, b.smtp.Messages()[0].Header.Get("Message-Id"), d.ProviderID)
		require.NotNil(t, d.ResponseCode)
		require.Equal(t, 250, *d.ResponseCode)
		require.NotEmpty(t, d.Response)
		require.Empty(t, d.LastError)
	})

	t.Run("SMTPPermanentBounce", func(t *testing.T) {
		t.Parallel()
		b := channelSetup(t, noon)
		b.smtp.RejectRcptEnhanced(550, gosmtp.EnhancedCode{5, 1, 1}, "no such user", 1)
		b.event(t, `{"customer_id":"c-4","type":"promo","email":"gone@example.com","name":"Di"}`)
		d := b.waitDeliveries(t, "c-4", "promo", 1)[0]
		waitJobs(t, b.db)
		require.Equal(t, "failed", d.Status)
		require.Equal(t, 1, d.Attempts)
		require.Equal(t, 0, b.smtp.Attempts(), "refused at RCPT TO, before DATA")
		require.NotNil(t, d.ResponseCode)
		require.Equal(t, 550, *d.ResponseCode)
		require.Contains(t, d.LastError, "no such user")
		require.Equal(t, 1, b.db.Count(t, "suppressions", "email = 'gone@example.com' AND reason = 'bounced'"))
		require.Equal(t, 1, b.db.Count(t, "river_job", "kind = 'ciclo.dispatch' AND state = 'cancelled'"))

		// Not even transactional mail goes to a hard-bounced address.
		b.event(t, `{"customer_id":"c-4","type":"receipt"}`)
		require.Equal(t, "suppressed", b.waitDeliveries(t, "c-4", "receipt", 1)[0].Status)
		require.Equal(t, 0, b.smtp.Attempts())
	})

	t.Run("SMTPPermanentNonRecipientErrorDoesNotSuppress", func(t *testing.T) {
		t.Parallel()
		b := channelSetup(t, noon)
		// A content or policy rejection at the end of DATA says nothing
		// about the address: the delivery fails, the address stays mailable.
		b.smtp.FailNext(554, "message looks like spam", 1)
		b.event(t, `{"customer_id":"c-9","type":"promo","email":"fine@example.com","name":"Fi"}`)
		d := b.waitDeliveries(t, "c-9", "promo", 1)[0]
		waitJobs(t, b.db)
		require.Equal(t, "failed", d.Status)
		require.Equal(t, 1, d.Attempts)
		require.NotNil(t, d.ResponseCode)
		require.Equal(t, 554, *d.ResponseCode)
		require.Equal(t, 0, b.db.Count(t, "suppressions", "email = 'fine@example.com'"))
	})

	t.Run("FrequencyCap", func(t *testing.T) {
		t.Parallel()
		b := channelSetup(t, noon)
		// Five firings at once: their dispatch jobs run concurrently, and
		// only two pass the cap of 2 per 7 days.
		var batch []string
		for i := range 5 {
			batch = append(batch, `{"customer_id":"c-5","type":"promo","email":"ed@example.com","name":"Ed","idempotency_key":"p`+strconv.Itoa(i)+`"}`)
		}
		b.event(t, "["+strings.Join(batch, ",")+"]")
		ds := b.waitDeliveries(t, "c-5", "promo", 5)
		var sent, skipped int
		for _, d := range ds {
			switch d.Status {
			case "sent":
				sent++
			case "skipped_cap":
				skipped++
				require.Contains(t, d.LastError, "frequency cap")
				require.Equal(t, 0, d.Attempts)
			}
		}
		require.Equal(t, 2, sent)
		require.Equal(t, 3, skipped)

		// A rule's own, higher cap lets its email through; so does transactional mail.
		b.event(t, `{"customer_id":"c-5","type":"vip"}`)
		require.Equal(t, "sent", b.waitDeliveries(t, "c-5", "vip", 1)[0].Status)
		b.event(t, `{"customer_id":"c-5","type":"receipt"}`)
		require.Equal(t, "sent", b.waitDeliveries(t, "c-5", "receipt", 1)[0].Status)

		// Eight days later the window has passed.
		b.clock.Set(noon.Add(8 * 24 * time.Hour))
		b.event(t, `{"customer_id":"c-5","type":"promo","idempotency_key":"p-later"}`)
		require.Equal(t, "sent", b.waitDeliveries(t, "c-5", "promo", 6)[5].Status)
		waitJobs(t, b.db)
		require.Len(t, b.smtp.Messages(), 5)
		require.Equal(t, 0, b.db.Count(t, "deliveries", "claimed_at IS NOT NULL"))
	})

	t.Run("QuietHours", func(t *testing.T) {
		t.Parallel()
		// 03:00 UTC is 22:00 the evening before in New York: quiet. In Tokyo it is noon.
		night := time.Date(2026, 1, 15, 3, 0, 0, 0, time.UTC)
		b := channelSetup(t, night)
		b.event(t, `{"customer_id":"c-ny","type":"promo","email":"ny@example.com","name":"Fay","timezone":"America/New_York"}`)
		b.event(t, `{"customer_id":"c-tk","type":"promo","email":"tk@example.com","name":"Gen","timezone":"Asia/Tokyo"}`)
		require.Equal(t, "sent", b.waitDeliveries(t, "c-tk", "promo", 1)[0].Status)

		var (
			jobID       int64
			scheduledAt time.Time
		)
		waitFor(t, "snoozed dispatch job", func() bool {
			err := b.db.Pool.QueryRow(context.Background(), `SELECT id, scheduled_at FROM river_job
				WHERE kind = 'ciclo.dispatch' AND args->>'customer_id' = 'c-ny' AND state = 'scheduled'`).Scan(&jobID, &scheduledAt)
			return err == nil
		})
		// It waits until 08:00 New York time: 10 hours from the clock's now.
		require.WithinDuration(t, time.Now().Add(10*time.Hour), scheduledAt, time.Minute)
		require.Equal(t, 1, b.db.Count(t, "deliveries", "customer_id = 'c-ny' AND status = 'queued' AND attempts = 0"))
		require.Len(t, b.smtp.Messages(), 1)
		// ciclo customer shows the hold, its reason and its end.
		entries, err := store.New(b.db.Pool).Timeline(context.Background(), "c-ny", 50)
		require.NoError(t, err)
		held := entries[len(entries)-1]
		require.Equal(t, store.TimelineHold, held.Kind)
		require.Equal(t, store.HoldQuietHours, held.Detail["reason"])
		require.Equal(t, "America/New_York", held.Detail["timezone"])
		until, err := time.Parse(time.RFC3339Nano, held.Detail["until"].(string))
		require.NoError(t, err)
		require.WithinDuration(t, scheduledAt, until, time.Millisecond)

		// The clock moves to 08:05 New York; the job runs again and sends.
		b.clock.Set(time.Date(2026, 1, 15, 13, 5, 0, 0, time.UTC))
		_, err = b.app.River.JobRetry(context.Background(), jobID)
		require.NoError(t, err)
		require.Equal(t, "sent", b.waitDeliveries(t, "c-ny", "promo", 1)[0].Status)
		require.Len(t, b.smtp.Messages(), 2)
	})

	t.Run("BatchDispatch", func(t *testing.T) {
		t.Parallel()
		b := channelSetup(t, noon)
		ctx := context.Background()
		// k1 already had one promo (the cap is 2 per 7 days); k3 is
		// suppressed; k4 is in Los Angeles, where noon UTC is 05:00: quiet.
		b.event(t, `{"customer_id":"k1","type":"promo","email":"k1@example.com","name":"K1","attributes":{"segment":"campaign"}}`)
		require.Equal(t, "sent", b.waitDeliveries(t, "k1", "promo", 1)[0].Status)
		b.event(t, `[{"customer_id":"k2","type":"seen","email":"k2@example.com","attributes":{"segment":"campaign"}},
			{"customer_id":"k3","type":"seen","email":"k3@example.com","attributes":{"segment":"campaign"}},
			{"customer_id":"k4","type":"seen","email":"k4@example.com","timezone":"America/Los_Angeles","attributes":{"segment":"campaign"}},
			{"customer_id":"k5","type":"seen","email":"k5@example.com","attributes":{"segment":"other"}}]`)
		_, err := b.db.Pool.Exec(ctx, `INSERT INTO suppressions (email, reason) VALUES ('k3@example.com', 'manual')`)
		require.NoError(t, err)
		waitJobs(t, b.db)
		b.smtp.FailNext(451, "try again later", 1)

		// One sweep fires both campaigns for k1–k4: eight deliveries, one batch job.
		_, err = b.app.River.Insert(ctx, jobs.SweepArgs{Tick: noon, Rules: []string{"campaign-a", "campaign-b"}}, nil)
		require.NoError(t, err)
		campaign := "rule IN ('campaign-a', 'campaign-b')"
		// The batch tries each delivery once, then gives those left queued
		// jobs of their own: the 451 a retry, k4's two a start at 08:00 in
		// Los Angeles (three hours from the clock's noon).
		k4Jobs := func() []int64 {
			rows, err := b.db.Pool.Query(ctx, `SELECT id, scheduled_at FROM river_job
				WHERE kind = 'ciclo.dispatch' AND args->>'customer_id' = 'k4' AND state = 'scheduled' ORDER BY id`)
			require.NoError(t, err)
			defer rows.Close()
			var ids []int64
			for rows.Next() {
				var (
					id int64
					at time.Time
				)
				require.NoError(t, rows.Scan(&id, &at))
				require.WithinDuration(t, time.Now().Add(3*time.Hour), at, time.Minute)
				ids = append(ids, id)
			}
			return ids
		}
		waitFor(t, "the batch to complete and the retry to send", func() bool {
			return b.db.Count(t, "river_job", "kind = 'ciclo.dispatch_batch' AND state = 'completed'") == 1 &&
				b.db.Count(t, "deliveries", campaign+" AND status = 'sent' AND attempts = 2") == 1
		})
		require.Len(t, k4Jobs(), 2)
		require.Equal(t, 8, b.db.Count(t, "deliveries", campaign))
		require.Equal(t, 1, b.db.Count(t, "river_job", "kind = 'ciclo.dispatch_batch'"))
		require.Equal(t, 3, b.db.Count(t, "river_job", "kind = 'ciclo.dispatch' AND (args->>'delivery_id')::bigint IN (SELECT id FROM deliveries WHERE "+campaign+")"),
			"one retry, two waiting for the end of quiet hours")
		count := func(where string, args ...any) int {
			return b.db.Count(t, "deliveries", campaign+" AND "+where, args...)
		}
		// k1: one more fits under the cap; the other, decided after it in the same batch, does not.
		require.Equal(t, 1, count("customer_id = 'k1' AND status = 'sent'"))
		require.Equal(t, 1, count("customer_id = 'k1' AND status = 'skipped_cap' AND attempts = 0"))
		require.Equal(t, 2, count("customer_id = 'k2' AND status = 'sent'"))
		require.Equal(t, 2, count("customer_id = 'k3' AND status = 'suppressed' AND attempts = 0"))
		require.Equal(t, 2, count("customer_id = 'k4' AND status = 'queued' AND attempts = 0"))
		// The 451 was retried on its own; nothing was sent twice.
		require.Equal(t, 2, count("status = 'sent' AND attempts = 1"))
		require.Equal(t, 0, b.db.Count(t, "deliveries", "claimed_at IS NOT NULL"))
		msgs := b.smtp.WaitMessages(t, 4, 15*time.Second)
		require.Len(t, msgs, 4, "the promo and three campaign emails, each once")
		ids := map[string]bool{}
		for _, m := range msgs {
			id := m.Header.Get("Message-Id")
			require.False(t, ids[id], "sent twice: %s", id)
			ids[id] = true
		}

		// At 08:05 in Los Angeles k4's two go out.
		b.clock.Set(time.Date(2026, 3, 10, 15, 5, 0, 0, time.UTC))
		for _, id := range k4Jobs() {
			_, err = b.app.River.JobRetry(ctx, id)
			require.NoError(t, err)
		}
		require.Len(t, b.waitDeliveries(t, "k4", "campaign-a", 1), 1)
		require.Len(t, b.waitDeliveries(t, "k4", "campaign-b", 1), 1)
		require.Equal(t, 2, count("customer_id = 'k4' AND status = 'sent' AND attempts = 1"))
		waitJobs(t, b.db)
		require.Len(t, b.smtp.Messages(), 6)
	})

	t.Run("WebhookRetriesWithStableID", func(t *testing.T) {
		t.Parallel()
		b := channelSetup(t, noon, 500, 500, 200)
		b.event(t, `{"customer_id":"c-6","type":"hook","email":"hu@example.com","name":"Hu"}`)
		d := b.waitDeliveries(t, "c-6", "hook", 1)[0]
		waitJobs(t, b.db)
		require.Equal(t, "sent", d.Status)
		require.Equal(t, 3, d.Attempts)
		require.Equal(t, 200, *d.ResponseCode)

		reqs := b.hook.requests()
		require.Len(t, reqs, 3)
		wantID := "delivery-" + strconv.FormatInt(d.ID, 10)
		for _, r := range reqs {
			require.Equal(t, wantID, r.header.Get("webhook-id"))
			require.True(t, verifyWebhook(t, ruleWebhookSecret, r), "signature with the rule's secret")
			require.False(t, verifyWebhook(t, fallbackWebhookSecret, r))
		}
		require.Equal(t, strconv.FormatInt(noon.Unix(), 10), reqs[0].header.Get("webhook-timestamp"))
		var body message.WebhookBody
		require.NoError(t, json.Unmarshal(reqs[0].body, &body))
		require.Equal(t, "rule.fired", body.Type)
		require.Equal(t, "hook", body.Rule)
		require.Equal(t, "c-6", body.Customer.ID)
		require.Equal(t, d.ID, body.DeliveryID)
		require.NotZero(t, body.FiringID)
		require.NotNil(t, body.Event)
		require.Equal(t, "hook", body.Event.Type)
		require.Contains(t, string(reqs[0].body), `"event":{"type":"hook"`, "snake_case keys throughout")

		// A rule without a secret signs with CICLO_WEBHOOK_SECRET.
		b.event(t, `{"customer_id":"c-6","type":"plain_hook"}`)
		require.Equal(t, "sent", b.waitDeliveries(t, "c-6", "plain-hook", 1)[0].Status)
		reqs = b.hook.requests()
		require.Len(t, reqs, 4)
		require.True(t, verifyWebhook(t, fallbackWebhookSecret, reqs[3]))
	})

	t.Run("WebhookClientErrorIsPermanent", func(t *testing.T) {
		t.Parallel()
		b := channelSetup(t, noon, 400)
		b.event(t, `{"customer_id":"c-7","type":"hook"}`)
		d := b.waitDeliveries(t, "c-7", "hook", 1)[0]
		waitJobs(t, b.db)
		require.Equal(t, "failed", d.Status)
		require.Equal(t, 1, d.Attempts)
		require.Equal(t, 400, *d.ResponseCode)
		require.Equal(t, `{"error":"bad payload"}`, d.Response)
		require.Contains(t, d.LastError, "400")
		require.Len(t, b.hook.requests(), 1)
		require.Equal(t, 0, b.db.Count(t, "suppressions", ""))
	})
}

// verifyWebhook checks a request's signature as the README tells receivers
// to: HMAC-SHA256 over "id.timestamp.body" with the base64-decoded secret
// after "whsec_" (or the secret's bytes), compared with each "v1,"
// signature in the header.
func verifyWebhook(t *testing.T, secret string, r hookRequest) bool {
	t.Helper()
	key := []byte(secret)
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		var err error
		key, err = base64.StdEncoding.DecodeString(rest)
		require.NoError(t, err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(r.header.Get("webhook-id") + "." + r.header.Get("webhook-timestamp") + "."))
	mac.Write(r.body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(r.header.Get("webhook-signature")) {
		got, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig, "v1,"))
		if err == nil && strings.HasPrefix(sig, "v1,") && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}
