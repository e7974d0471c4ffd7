package reliability

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/smtptest"
	"github.com/ciclohq/ciclo/internal/testdb"
)

// rescueEnv lets River rescue a killed worker's jobs within seconds: jobs
// that send may run 5 s, a job running for 6 s is presumed dead (see the
// README, "Rescue of stuck jobs"). River's rescuer looks every 30 s.
var rescueEnv = []string{"CICLO_JOB_TIMEOUT=5s", "CICLO_RESCUE_AFTER=6s"}

// workerEmailJobs is --email-workers of the test's workers: at most that
// many emails are in flight in a process when it is killed.
const workerEmailJobs = 8

// TestKillWorkerMidDispatch: one API process and two worker processes; a
// few thousand first orders are posted in batches while the SMTP server
// holds each message a few ms; one worker is killed with SIGKILL in the
// middle of dispatch and started again. Every acknowledged event is stored
// and fires once (one firing, one coupon), and every customer gets their
// email, counted by Message-ID at the SMTP server. A kill between the
// server's 250 and the write of the outcome resends that email (same
// Message-ID); those duplicates are reported, bounded by the emails in
// flight in the killed process.
func TestKillWorkerMidDispatch(t *testing.T) {
	t.Parallel()
	n, batch := 2000, 100
	if long() {
		n = 10000
	}
	db := testdb.New(t)
	smtp := smtptest.StartWithOptions(t, smtptest.Options{DataDelay: 3 * time.Millisecond})
	rules := writeFile(t, "rules.yaml", firstOrderRules)
	env := append([]string{"DATABASE_URL=" + withPool(db.URL, 12), "CICLO_SMTP_URL=" + smtp.URL, "CICLO_RULES=" + rules}, rescueEnv...)
	workerArgs := []string{"--role", "worker", "--no-migrate", "--evaluate-workers", "8",
		"--email-workers", fmt.Sprint(workerEmailJobs), "--sweep-workers", "1"}

	api := startProc(t, "api", env, "--role", "api", "--no-migrate")
	w1 := startProc(t, "worker-1", env, workerArgs...)
	startProc(t, "worker-2", env, workerArgs...)

	// Post the events, two batches at a time; keep what was acknowledged.
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	batches := make(chan int)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range batches {
				body, ids := firstOrders("k", from, min(from+batch, n))
				status, resp, err := postJSON(context.Background(), api.addr, "/v1/events", body)
				if err != nil || status/100 != 2 {
					t.Errorf("batch %d: %d %v %s", from, status, err, resp)
					continue
				}
				mu.Lock()
				acked = append(acked, ids...)
				mu.Unlock()
			}
		}()
	}
	go func() {
		for from := 0; from < n; from += batch {
			batches <- from
		}
		close(batches)
	}()

	// Kill worker 1 once a fifth of the emails went out: it is sending.
	eventually(t, 2*time.Minute, "a fifth of the emails", func() (bool, string) {
		got := len(smtp.Messages())
		return got >= n/5, fmt.Sprintf("%d emails", got)
	})
	w1.kill(t)
	inFlight := db.Count(t, "river_job", "state = 'running' AND queue = 'email'")
	t.Logf("killed worker-1 after %d emails; %d email jobs left running", len(smtp.Messages()), inFlight)
	time.Sleep(time.Second)
	startProc(t, "worker-1b", env, workerArgs...)
	wg.Wait()
	require.Len(t, acked, n, "every batch was acknowledged")

	// Every customer gets an email once River rescued the killed jobs.
	eventually(t, 3*time.Minute, "every email", func() (bool, string) {
		ids := map[string]bool{}
		for _, m := range smtp.Messages() {
			ids[m.Header.Get("Message-Id")] = true
		}
		sent := db.Count(t, "deliveries", "status = 'sent'")
		return len(ids) >= n && sent >= n, fmt.Sprintf("%d distinct Message-IDs, %d deliveries sent, %d jobs not completed",
			len(ids), sent, db.Count(t, "river_job", "state NOT IN ('completed','cancelled','discarded')"))
	})

	require.Equal(t, n, db.Count(t, "events", "customer_id = ANY($1)", acked), "every acknowledged event is stored")
	require.Equal(t, n, db.Count(t, "rule_firings", "rule = 'first-order'"), "one firing per event")
	require.Equal(t, 0, db.Count(t, "(SELECT customer_id FROM rule_firings GROUP BY customer_id HAVING count(*) > 1) d", ""))
	require.Equal(t, n, db.Count(t, "coupons", ""), "one coupon per event")
	require.Equal(t, 0, db.Count(t, "(SELECT customer_id FROM coupons GROUP BY customer_id HAVING count(*) > 1) d", ""))
	require.Equal(t, n, db.Count(t, "deliveries", "status = 'sent'"))

	msgs := smtp.Messages()
	byID := map[string]int{}
	byRcpt := map[string]bool{}
	for _, m := range msgs {
		byID[m.Header.Get("Message-Id")]++
		byRcpt[m.To[0]] = true
	}
	dups := len(msgs) - len(byID)
	require.Len(t, byID, n, "one Message-ID per event")
	require.Len(t, byRcpt, n, "every customer got the email")
	t.Logf("kill -9 of 1 of 2 workers: %d events, %d emails, %d distinct Message-IDs, %d duplicates (sent again after the kill, same Message-ID)",
		n, len(msgs), len(byID), dups)
	require.LessOrEqual(t, dups, workerEmailJobs*2, "only emails in flight in the killed process may be sent again")
}
