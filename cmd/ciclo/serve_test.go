package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/examplerules"
	"github.com/ciclohq/ciclo/internal/smtptest"
	"github.com/ciclohq/ciclo/internal/testdb"
)

// buildBinary builds the ciclo binary into a temporary folder.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ciclo")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// waitFor waits for a value on ch or fails after timeout.
func waitFor[T any](t *testing.T, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		require.FailNow(t, "timed out waiting for "+what)
		var zero T
		return zero
	}
}

// serveProcess is a running `ciclo serve`.
type serveProcess struct {
	cmd     *exec.Cmd
	addr    string
	logDone chan []string // the log lines, once stderr closes

	mu   sync.Mutex
	seen []string // the log lines so far
}

// logSoFar returns the log lines read so far.
func (p *serveProcess) logSoFar() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// startServe runs `ciclo serve` against db and smtp with extra env and
// waits until it listens. It serves rules.example.yaml with its quiet hours
// moved away from the clock (examplerules), so the email goes out at any hour.
func startServe(t *testing.T, bin string, db *testdb.DB, smtp *smtptest.Server, env ...string) *serveProcess {
	t.Helper()
	return startServeEnv(t, bin, append([]string{
		"DATABASE_URL=" + db.URL, "CICLO_SMTP_URL=" + smtp.URL, "CICLO_FROM=Shop <shop@example.com>",
	}, env...)...)
}

// startServeEnv runs `ciclo serve` with this environment (DATABASE_URL and
// CICLO_* taken out) plus env, and waits until it listens.
func startServeEnv(t *testing.T, bin string, env ...string) *serveProcess {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--rules", examplerules.Path(t), "--addr", "127.0.0.1:0")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "CICLO_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, "CICLO_API_TOKEN=tok"), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	// The JSON log says where it listens.
	p := &serveProcess{cmd: cmd, logDone: make(chan []string, 1)}
	addrc := make(chan string, 1)
	go func() {
		var lines []string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			p.mu.Lock()
			p.seen = append(p.seen, sc.Text())
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "app: ciclo is running" {
				addrc <- rec.Addr
			}
		}
		p.logDone <- lines
	}()
	p.addr = waitFor(t, addrc, 30*time.Second, "ciclo to listen")
	return p
}

// postEvent posts one first order for customer.
func postEvent(t *testing.T, addr, customer string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/events", strings.NewReader(
		`{"customer_id":"`+customer+`","type":"order_placed","email":"`+customer+`@example.com","properties":{"total":10}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
}

func TestServe(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)

	t.Run("SIGTERMLetsTheInFlightEmailFinish", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		dataStarted := make(chan struct{}, 10)
		smtp := smtptest.StartWithOptions(t, smtptest.Options{
			DataDelay: 1500 * time.Millisecond,
			OnData:    func() { dataStarted <- struct{}{} },
		})

		p := startServe(t, bin, db, smtp, "CICLO_SHUTDOWN_TIMEOUT=10s")
		postEvent(t, p.addr, "ana")
		cmd, addr, logDone := p.cmd, p.addr, p.logDone

		// The email is being sent (the server holds its reply): stop now.
		waitFor(t, dataStarted, 15*time.Second, "the email to reach the SMTP server")
		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		signalled := time.Now()

		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		lines := waitFor(t, logDone, 20*time.Second, "the log to end")
		err := waitFor(t, exited, 20*time.Second, "ciclo to exit")
		require.NoError(t, err, "exit status; log:\n%s", strings.Join(lines, "\n"))
		require.Greater(t, time.Since(signalled), time.Second, "it waited for the send in flight")

		require.Len(t, smtp.Messages(), 1)
		require.Equal(t, []string{"ana@example.com"}, smtp.Messages()[0].To)
		require.Equal(t, 1, db.Count(t, "deliveries", "customer_id = 'ana' AND status = 'sent'"))
		require.Equal(t, 0, db.Count(t, "river_job", "state NOT IN ('completed')"), "no job left behind")

		// It no longer answers.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
		require.NoError(t, err)
		_, err = http.DefaultClient.Do(req)
		require.Error(t, err)
	})

	t.Run("SecondSignalStopsAtOnce", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		dataStarted := make(chan struct{}, 10)
		smtp := smtptest.StartWithOptions(t, smtptest.Options{
			DataDelay: 30 * time.Second,
			OnData:    func() { dataStarted <- struct{}{} },
		})
		p := startServe(t, bin, db, smtp, "CICLO_SHUTDOWN_TIMEOUT=60s")
		postEvent(t, p.addr, "bo")
		waitFor(t, dataStarted, 15*time.Second, "the email to reach the SMTP server")

		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		exited := make(chan error, 1)
		go func() { exited <- p.cmd.Wait() }()
		select {
		case err := <-exited:
			require.FailNow(t, "exited before the send finished", "%v", err)
		case <-time.After(500 * time.Millisecond):
		}
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		signalled := time.Now()
		waitFor(t, p.logDone, 15*time.Second, "the log to end")
		waitFor(t, exited, 15*time.Second, "ciclo to exit")
		// The running job is cancelled (River's 5 s grace at most), not
		// waited for: the delivery stays queued for a retry.
		require.Less(t, time.Since(signalled), 7*time.Second)
		require.Equal(t, 0, db.Count(t, "deliveries", "status = 'sent'"))
	})
}

// TestServeWarnsAboutMailSetup checks the start-up warnings for a real
// SMTP server with settings only fit for trying ciclo out: a localhost
// sender and unsubscribe links that are not https.
func TestServeWarnsAboutMailSetup(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	stopped := func(p *serveProcess) string {
		t.Helper()
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		lines := waitFor(t, p.logDone, 30*time.Second, "the log to end")
		require.NoError(t, p.cmd.Wait())
		return strings.Join(lines, "\n")
	}
	const fromWarning = "config: email goes to an SMTP server but the sender is still at localhost"
	const httpsWarning = "config: email goes to an SMTP server but unsubscribe links are not https"

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		db, smtp := testdb.New(t), smtptest.Start(t)
		log := stopped(startServeEnv(t, bin, "DATABASE_URL="+db.URL, "CICLO_SMTP_URL="+smtp.URL))
		require.Contains(t, log, fromWarning)
		require.Contains(t, log, `"from":"ciclo <ciclo@localhost>"`)
		require.Contains(t, log, httpsWarning)
		require.Contains(t, log, "RFC 8058")
	})
	t.Run("HTTPPublicURL", func(t *testing.T) {
		t.Parallel()
		db, smtp := testdb.New(t), smtptest.Start(t)
		log := stopped(startServeEnv(t, bin, "DATABASE_URL="+db.URL, "CICLO_SMTP_URL="+smtp.URL,
			"CICLO_FROM=Shop <news@shop.example>", "CICLO_PUBLIC_URL=http://shop.example"))
		require.NotContains(t, log, fromWarning)
		require.Contains(t, log, httpsWarning)
		require.Contains(t, log, `"public_url":"http://shop.example"`)
	})
	t.Run("Production", func(t *testing.T) {
		t.Parallel()
		db, smtp := testdb.New(t), smtptest.Start(t)
		log := stopped(startServeEnv(t, bin, "DATABASE_URL="+db.URL, "CICLO_SMTP_URL="+smtp.URL,
			"CICLO_FROM=Shop <news@shop.example>", "CICLO_PUBLIC_URL=https://ciclo.shop.example"))
		require.NotContains(t, log, fromWarning)
		require.NotContains(t, log, httpsWarning)
	})
	t.Run("OutboxNeedsNoWarning", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		log := stopped(startServeEnv(t, bin, "DATABASE_URL="+db.URL, "CICLO_OUTBOX_DIR="+t.TempDir()))
		require.NotContains(t, log, fromWarning)
		require.NotContains(t, log, httpsWarning)
	})
}
