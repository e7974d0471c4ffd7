package reliability

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/internal/smtptest"
	"github.com/ciclohq/ciclo/internal/testdb"
)

// outageEvents is how many first orders the outage tests post.
const outageEvents = 20

// River retries a delivery 1 s after its first failure and 16 s after its
// second (attempt⁴ seconds, README "Delivery"): an outage spanning two
// attempts is over by the third, about 17 s after the first, plus jitter.
const twoRetries = 45 * time.Second

// waitAttempts waits until every delivery has been tried n times.
func waitAttempts(t *testing.T, db *testdb.DB, n int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("every delivery tried %d times", n), func() (bool, string) {
		got := db.Count(t, "deliveries", "attempts >= $1", n)
		return got == outageEvents, fmt.Sprintf("%d of %d", got, outageEvents)
	})
}

// TestSMTPOutage: the SMTP server is down (connections refused), then
// answers 451, then accepts. Every email arrives exactly once, with the
// Message-ID it was tried with, within two retries.
func TestSMTPOutage(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	smtp := smtptest.Start(t)
	px := newProxy(t, smtp.Addr)
	rules := writeFile(t, "rules.yaml", firstOrderRules)
	env := []string{"DATABASE_URL=" + withPool(db.URL, 10), "CICLO_SMTP_URL=smtp://" + px.addr + "?tls=none", "CICLO_RULES=" + rules}
	p := startProc(t, "all", env, "--no-migrate", "--evaluate-workers", "4", "--email-workers", "4", "--sweep-workers", "1")

	body, _ := firstOrders("s", 0, outageEvents)
	status, resp, err := postJSON(t.Context(), p.addr, "/v1/events", body)
	require.NoError(t, err)
	require.Equal(t, 202, status, resp)
	start := time.Now()

	waitAttempts(t, db, 1) // refused: the server is down
	smtp.FailNext(451, "4.3.0 try again later", -1)
	px.up()
	waitAttempts(t, db, 2) // 451
	require.Empty(t, smtp.Messages())
	smtp.FailNext(0, "", 0)

	eventually(t, twoRetries, "every email", func() (bool, string) {
		n := db.Count(t, "deliveries", "status = 'sent'")
		return n == outageEvents, fmt.Sprintf("%d sent", n)
	})
	t.Logf("all %d emails through down → 451 → up in %s", outageEvents, time.Since(start).Round(time.Second))
	require.Less(t, time.Since(start), twoRetries)

	time.Sleep(time.Second)
	ids := map[string]int{}
	for _, m := range smtp.Messages() {
		ids[m.Header.Get("Message-Id")]++
	}
	require.Len(t, ids, outageEvents)
	for id, n := range ids {
		require.Equal(t, 1, n, "%s arrived once", id)
	}
	// The 451 try carried the Message-ID of the email that arrived.
	tried := map[string]string{}
	for _, m := range smtp.Tries() {
		if prev, ok := tried[m.To[0]]; ok {
			require.Equal(t, prev, m.Header.Get("Message-Id"), "same Message-ID on every try to %s", m.To[0])
		}
		tried[m.To[0]] = m.Header.Get("Message-Id")
	}
	require.Len(t, tried, outageEvents)
}

// hookRequest is one call a webhook receiver got.
type hookRequest struct {
	id, ts, sig string
	body        []byte
	status      int
}

// TestWebhookOutage: the receiver is down (connections refused), then
// answers 503, then 200. Every webhook is received exactly once with 200,
// each with the same webhook-id on every try and a valid signature, within
// two retries.
func TestWebhookOutage(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var (
		mu     sync.Mutex
		reqs   []hookRequest
		answer = http.StatusServiceUnavailable
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		st := answer
		reqs = append(reqs, hookRequest{id: r.Header.Get("webhook-id"), ts: r.Header.Get("webhook-timestamp"),
			sig: r.Header.Get("webhook-signature"), body: b, status: st})
		mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(recv.Close)
	px := newProxy(t, recv.Listener.Addr().String())

	db := testdb.New(t)
	smtp := smtptest.Start(t)
	rules := writeFile(t, "rules.yaml", `version: 1
rules:
  - name: crm
    on: order_placed
    actions:
      - webhook: { url: "http://`+px.addr+`/hook", secret: "`+secret+`" }
`)
	env := []string{"DATABASE_URL=" + withPool(db.URL, 10), "CICLO_SMTP_URL=" + smtp.URL, "CICLO_RULES=" + rules,
		"CICLO_WEBHOOK_ALLOW_PRIVATE=true"}
	p := startProc(t, "all", env, "--no-migrate", "--evaluate-workers", "4", "--webhook-workers", "4", "--sweep-workers", "1")

	body, _ := firstOrders("w", 0, outageEvents)
	status, resp, err := postJSON(t.Context(), p.addr, "/v1/events", body)
	require.NoError(t, err)
	require.Equal(t, 202, status, resp)
	start := time.Now()

	waitAttempts(t, db, 1) // refused
	px.up()
	waitAttempts(t, db, 2) // 503
	mu.Lock()
	answer = http.StatusOK
	mu.Unlock()

	eventually(t, twoRetries, "every webhook", func() (bool, string) {
		n := db.Count(t, "deliveries", "status = 'sent'")
		return n == outageEvents, fmt.Sprintf("%d sent", n)
	})
	t.Logf("all %d webhooks through down → 503 → up in %s", outageEvents, time.Since(start).Round(time.Second))
	require.Less(t, time.Since(start), twoRetries)
	time.Sleep(time.Second)

	mu.Lock()
	defer mu.Unlock()
	okByDelivery := map[int64]int{}
	idByDelivery := map[int64]string{}
	for _, r := range reqs {
		var wb struct {
			DeliveryID int64 `json:"delivery_id"`
		}
		require.NoError(t, json.Unmarshal(r.body, &wb))
		if prev, ok := idByDelivery[wb.DeliveryID]; ok {
			require.Equal(t, prev, r.id, "same webhook-id on every try of delivery %d", wb.DeliveryID)
		}
		idByDelivery[wb.DeliveryID] = r.id
		ts, err := strconv.ParseInt(r.ts, 10, 64)
		require.NoError(t, err)
		require.Equal(t, channels.Sign(secret, r.id, time.Unix(ts, 0), r.body), r.sig, "valid signature")
		if r.status == http.StatusOK {
			okByDelivery[wb.DeliveryID]++
		}
	}
	require.Len(t, okByDelivery, outageEvents)
	for id, n := range okByDelivery {
		require.Equal(t, 1, n, "delivery %d received once", id)
	}
	t.Logf("%d requests for %d webhooks", len(reqs), outageEvents)
}
