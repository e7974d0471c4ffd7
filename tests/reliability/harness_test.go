package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// token is the API token of every process the tests start.
const token = "tok"

// cicloBin is the ciclo binary TestMain builds.
var cicloBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ciclo-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability: temp dir:", err)
		os.Exit(1)
	}
	cicloBin = filepath.Join(dir, "ciclo")
	if out, err := exec.Command("go", "build", "-o", cicloBin, "github.com/ciclohq/ciclo/cmd/ciclo").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "reliability: go build ciclo: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// long reports whether the long variants run (CICLO_RELIABILITY_LONG=1).
func long() bool { return os.Getenv("CICLO_RELIABILITY_LONG") != "" }

// firstOrderRules fires once per first order: a stage, a coupon and an email.
const firstOrderRules = `version: 1
stages: [reach, conversion]
rules:
  - name: first-order
    on: order_placed
    when: customer.orders_count == 1
    actions:
      - stage: conversion
      - coupon: { percent: 10, expires_in: 14d }
      - email: { template: first_order_bonus, subject: "A gift for your first order" }
`

// writeFile writes content to name in a temporary folder and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// withPool limits a process's pool so that several processes fit the
// shared server's connections.
func withPool(dbURL string, conns int) string {
	sep := "?"
	if strings.Contains(dbURL, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%spool_max_conns=%d", dbURL, sep, conns)
}

// proc is a running `ciclo serve`.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string

	mu     sync.Mutex
	lines  []string
	exited chan struct{}
	err    error // the exit status, once exited is closed
}

// startProc runs `ciclo serve` with env added to the environment and args
// after "serve", and waits until it listens.
func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(cicloBin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), "CICLO_API_TOKEN="+token, "CICLO_FROM=Shop <shop@example.com>",
		"CICLO_SECRET=reliability-secret"), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "app: ciclo is running" {
				addrc <- rec.Addr
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case p.addr = <-addrc:
	case <-p.exited:
		require.FailNowf(t, "ciclo exited at start", "%s: %v\n%s", name, p.err, p.log())
	case <-time.After(60 * time.Second):
		require.FailNowf(t, "ciclo did not start", "%s within 60s\n%s", name, p.log())
	}
	return p
}

// log returns the process's log so far.
func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.exited
}

// stop sends SIGTERM and waits for the exit (kills after 20 s).
func (p *proc) stop(t *testing.T) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Logf("%s: no exit 20s after SIGTERM; killing", p.name)
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// client is the HTTP client of the tests; its timeout turns a hang into a failure.
var client = &http.Client{Timeout: 15 * time.Second}

// postJSON posts body to addr's path with the API token.
func postJSON(ctx context.Context, addr, path string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// getStatus GETs addr's path and returns the status.
func getStatus(ctx context.Context, addr, path string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// firstOrders is a batch of first orders for customers prefix-from … prefix-(to-1).
func firstOrders(prefix string, from, to int) ([]byte, []string) {
	type event struct {
		CustomerID     string         `json:"customer_id"`
		Type           string         `json:"type"`
		IdempotencyKey string         `json:"idempotency_key"`
		Email          string         `json:"email"`
		Properties     map[string]any `json:"properties"`
	}
	var evs []event
	var ids []string
	for i := from; i < to; i++ {
		id := fmt.Sprintf("%s-%05d", prefix, i)
		ids = append(ids, id)
		evs = append(evs, event{CustomerID: id, Type: "order_placed", IdempotencyKey: "order-" + id,
			Email: id + "@example.com", Properties: map[string]any{"total": 10}})
	}
	b, _ := json.Marshal(evs)
	return b, ids
}

// eventually polls cond every 200 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			require.FailNowf(t, "timed out", "waiting %s for %s; last: %s", timeout, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// freePort returns a TCP port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
