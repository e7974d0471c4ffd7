package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/worker"
)

const reloadRulesV1 = `version: 1
stages: [reach, acquisition]
rules:
  - name: greet-v1
    on: signed_up
    actions:
      - stage: acquisition
`

const reloadRulesV2 = `version: 1
stages: [reach, acquisition]
rules:
  - name: greet-v2
    on: signed_up
    when: customer.stage == "reach"
    actions:
      - stage: acquisition
`

// An unknown field: must be rejected, v2 keeps running.
const reloadRulesBroken = `version: 1
stages: [reach, acquisition]
rules:
  - name: greet-v3
    on: signed_up
    when: customer.stag == "reach"
    actions:
      - stage: acquisition
`

// logBuffer collects log output and wakes waiters on every write.
type logBuffer struct {
	t       *testing.T
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer(t *testing.T) *logBuffer {
	return &logBuffer{t: t, changed: make(chan struct{})}
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

// waitFor waits until the log contains s and returns the log.
func (l *logBuffer) waitFor(t *testing.T, s string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		out, changed := l.buf.String(), l.changed
		l.mu.Unlock()
		if strings.Contains(out, s) {
			return out
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("log never contained %q; log:\n%s", s, out)
		}
	}
}

type reloadBundle struct {
	app      *app.App
	db       *testdb.DB
	logs     *logBuffer
	path     string
	reloaded chan *rules.RuleSet
	url      string
}

func setupReload(t *testing.T, noWatch bool) *reloadBundle {
	t.Helper()
	db := testdb.New(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	require.NoError(t, os.WriteFile(path, []byte(reloadRulesV1), 0o644))
	logs := newLogBuffer(t)
	ctx := context.Background()
	a, err := app.New(ctx, app.Config{
		DatabaseURL: db.URL, RulesPath: path, APIToken: token, Addr: "127.0.0.1:0",
		OutboxDir: filepath.Join(dir, "outbox"), Migrate: true, NoWatchRules: noWatch,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Worker: worker.Config{Schema: db.Schema},
	})
	require.NoError(t, err)
	reloaded := make(chan *rules.RuleSet, 10)
	a.OnReload(func(_ context.Context, rs *rules.RuleSet) { reloaded <- rs })
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { require.NoError(t, a.Stop(context.Background())) })
	return &reloadBundle{app: a, db: db, logs: logs, path: path, reloaded: reloaded, url: "http://" + a.Addr()}
}

// replaceFile writes content the way editors do: a temporary file renamed
// over the original.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

func waitReload(t *testing.T, ch <-chan *rules.RuleSet) *rules.RuleSet {
	t.Helper()
	select {
	case rs := <-ch:
		return rs
	case <-time.After(10 * time.Second):
		t.Fatal("no reload within 10s")
		return nil
	}
}

func rulesVersion(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/healthz")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		RulesVersion string `json:"rules_version"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return body.RulesVersion
}

func signUp(t *testing.T, url, customerID string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/events",
		strings.NewReader(`{"customer_id":"`+customerID+`","type":"signed_up"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, string(b))
}

// waitFiring waits for the customer's firing of rule and returns its rule-set version.
func waitFiring(t *testing.T, db *testdb.DB, customerID, rule string) string {
	t.Helper()
	var version string
	require.Eventually(t, func() bool {
		err := db.Pool.QueryRow(context.Background(),
			"SELECT rule_set_version FROM rule_firings WHERE customer_id = $1 AND rule = $2", customerID, rule).Scan(&version)
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "no firing of %q for %q", rule, customerID)
	return version
}

// readyzBody is the body of /readyz.
type readyzBody struct {
	Status       string            `json:"status"`
	RulesVersion string            `json:"rules_version"`
	Checks       map[string]string `json:"checks"`
	RulesReload  *struct {
		Error string    `json:"error"`
		At    time.Time `json:"at"`
	} `json:"rules_reload"`
}

func readyz(t *testing.T, url string) readyzBody {
	t.Helper()
	status, _, body := get(t, url+"/readyz")
	require.Equal(t, http.StatusOK, status, body)
	var r readyzBody
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	return r
}

func TestReload(t *testing.T) {
	t.Parallel()

	t.Run("FileEditsAreWatched", func(t *testing.T) {
		t.Parallel()
		b := setupReload(t, false)
		v1 := b.app.Rules.Load().Version
		require.Equal(t, v1, rulesVersion(t, b.url))

		// A valid edit: the new version is live, and fires.
		replaceFile(t, b.path, reloadRulesV2)
		v2 := waitReload(t, b.reloaded).Version
		require.NotEqual(t, v1, v2)
		require.Equal(t, v2, b.app.Rules.Load().Version)
		require.Equal(t, v2, rulesVersion(t, b.url))
		b.logs.waitFor(t, "rules_version="+v2+" previous_version="+v1)
		signUp(t, b.url, "c-1")
		require.Equal(t, v2, waitFiring(t, b.db, "c-1", "greet-v2"))

		// An invalid edit: rejected with its errors logged, v2 keeps firing.
		replaceFile(t, b.path, reloadRulesBroken)
		out := b.logs.waitFor(t, "rules reload rejected")
		require.Contains(t, out, `rule \"greet-v3\": when: customer has no field \"stag\" (did you mean \"stage\"?)`)
		require.Contains(t, out, "rules_version="+v2)
		require.Equal(t, v2, b.app.Rules.Load().Version)
		require.Equal(t, v2, rulesVersion(t, b.url))
		signUp(t, b.url, "c-2")
		require.Equal(t, v2, waitFiring(t, b.db, "c-2", "greet-v2"))
		require.Equal(t, 0, b.db.Count(t, "rule_firings", "rule = 'greet-v3'"))
		require.Empty(t, b.reloaded, "a rejected file runs no hooks")

		// /readyz stays ready and says why the file is not in force; the
		// metrics count the rejection.
		ready := readyz(t, b.url)
		require.Equal(t, "ready", ready.Status)
		require.Equal(t, v2, ready.RulesVersion)
		require.Contains(t, ready.Checks["rules"], "last reload was rejected")
		require.NotNil(t, ready.RulesReload)
		require.Contains(t, ready.RulesReload.Error, `rule "greet-v3": when: customer has no field "stag"`)
		require.WithinDuration(t, time.Now(), ready.RulesReload.At, time.Minute)
		_, _, metrics := get(t, b.url+"/metrics", "Authorization", "Bearer "+token)
		require.Equal(t, 1.0, metricValue(t, metrics, "ciclo_rules_reload_errors_total"))
		require.Equal(t, 0.0, metricValue(t, metrics, "ciclo_rules_last_reload_ok"))

		// A good file again clears both.
		replaceFile(t, b.path, reloadRulesV1)
		waitReload(t, b.reloaded)
		ready = readyz(t, b.url)
		require.Nil(t, ready.RulesReload)
		require.Equal(t, "ok", ready.Checks["rules"])
		_, _, metrics = get(t, b.url+"/metrics", "Authorization", "Bearer "+token)
		require.Equal(t, 1.0, metricValue(t, metrics, "ciclo_rules_reload_errors_total"))
		require.Equal(t, 1.0, metricValue(t, metrics, "ciclo_rules_last_reload_ok"))
	})

	t.Run("ReloadOnSignal", func(t *testing.T) {
		t.Parallel()
		b := setupReload(t, true)
		sig := make(chan os.Signal)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { b.app.ReloadOn(ctx, sig); close(done) }()
		t.Cleanup(func() { cancel(); <-done })

		require.NoError(t, os.WriteFile(b.path, []byte(reloadRulesBroken), 0o644))
		sig <- os.Interrupt // any signal value; serve sends SIGHUP
		b.logs.waitFor(t, "trigger=signal")
		require.Equal(t, "greet-v1", b.app.Rules.Load().Rules[0].Name)

		require.NoError(t, os.WriteFile(b.path, []byte(reloadRulesV2), 0o644))
		sig <- os.Interrupt
		require.Equal(t, "greet-v2", waitReload(t, b.reloaded).Rules[0].Name)
	})

	t.Run("ReloadSyncsScheduledSweeps", func(t *testing.T) {
		t.Parallel()
		b := setupReload(t, true)
		require.NoError(t, os.WriteFile(b.path, []byte(reloadRulesV1+`  - name: nightly
    schedule: "0 3 * * *"
    cooldown: 30d
    actions:
      - stage: acquisition
`), 0o644))
		require.NoError(t, b.app.Reload(context.Background()))
		b.logs.waitFor(t, `scheduled sweeps updated" added=[ciclo.sweep/`)

		require.NoError(t, os.WriteFile(b.path, []byte(reloadRulesV1), 0o644))
		require.NoError(t, b.app.Reload(context.Background()))
		b.logs.waitFor(t, "added=[] removed=[ciclo.sweep/")
	})

	t.Run("ReloadReturnsLoadErrors", func(t *testing.T) {
		t.Parallel()
		b := setupReload(t, true)
		before := b.app.Rules.Load()
		require.NoError(t, os.WriteFile(b.path, []byte(reloadRulesBroken), 0o644))
		err := b.app.Reload(context.Background())
		var les *rules.LoadErrors
		require.ErrorAs(t, err, &les)
		require.Len(t, *les, 1)
		require.Same(t, before, b.app.Rules.Load())

		// Unchanged content is a no-op: no hook runs.
		require.NoError(t, os.WriteFile(b.path, []byte(reloadRulesV1), 0o644))
		require.NoError(t, b.app.Reload(context.Background()))
		require.Same(t, before, b.app.Rules.Load())
		require.Empty(t, b.reloaded)
	})
}

// TestReloadWaitsForCompleteFile: the rules file is written in two steps
// 1.5 s apart, and its first half is a valid rule set of its own. The
// watcher waits until the file has not changed for the settle time, says
// so in the log, and loads only the complete file: no event is ever judged
// by the half.
func TestReloadWaitsForCompleteFile(t *testing.T) {
	t.Parallel()
	b := setupReload(t, false)
	full := reloadRulesV1 + `  - name: second-half
    on: signed_up
    actions:
      - stage: acquisition
`

	// Step one: a complete, valid file of one rule plus the start of another.
	first := reloadRulesV1 + "  # second rule follows\n"
	require.NoError(t, os.WriteFile(b.path, []byte(first), 0o644))
	time.Sleep(1500 * time.Millisecond)
	// Step two, in place: the rest.
	f, err := os.OpenFile(b.path, os.O_WRONLY|os.O_TRUNC, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(full)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	written := time.Now()

	rs := waitReload(t, b.reloaded)
	require.Len(t, rs.Rules, 2, "the complete file, not its first step")
	require.GreaterOrEqual(t, time.Since(written), app.ReloadSettleDefault-100*time.Millisecond, "it waited for the file to settle")
	out := b.logs.waitFor(t, "rules file settled; reloading")
	require.Contains(t, out, "waiting until it has not changed for the settle time before reloading")
	select {
	case rs := <-b.reloaded:
		t.Fatalf("a second reload, of %d rules", len(rs.Rules))
	case <-time.After(500 * time.Millisecond):
	}
}
