package server_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/server"
	"github.com/ciclohq/ciclo/worker"
)

const (
	apiToken     = "api-token"
	metricsToken = "metrics-token"
	uiUser       = "ops"
	uiPassword   = "ops-password"
)

// syncBuffer collects a process's log lines across goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// appBundle is a running ciclo API process on a schema of its own.
type appBundle struct {
	db   *testdb.DB
	app  *app.App
	url  string // http://127.0.0.1:port
	addr string
	logs *syncBuffer // JSON lines, with request ids
}

// startApp runs an API process (River UI included, no workers) on a fresh
// schema; edit changes its config first.
func startApp(t *testing.T, edit func(*app.Config)) *appBundle {
	t.Helper()
	db := testdb.New(t)
	return startAppOn(t, db, db.URL, edit)
}

// startAppOn runs the process against databaseURL (e.g. through a proxy)
// whose schema is db's.
func startAppOn(t *testing.T, db *testdb.DB, databaseURL string, edit func(*app.Config)) *appBundle {
	t.Helper()
	logs := &syncBuffer{}
	cfg := app.Config{
		DatabaseURL:  databaseURL,
		RulesPath:    filepath.Join("..", "rules.example.yaml"),
		APIToken:     apiToken,
		MetricsToken: metricsToken,
		UIUser:       uiUser,
		UIPassword:   uiPassword,
		Addr:         "127.0.0.1:0",
		OutboxDir:    t.TempDir(),
		Role:         app.RoleAPI,
		Logger:       slog.New(server.LogHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		Worker:       worker.Config{Schema: db.Schema},
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx := context.Background()
	a, err := app.New(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() {
		require.NoError(t, a.Stop(context.Background()))
		if t.Failed() {
			t.Log(logs.String())
		}
	})
	return &appBundle{db: db, app: a, url: "http://" + a.Addr(), addr: a.Addr(), logs: logs}
}

// do sends a request and returns the status and body.
func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	client := &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// newRequest builds a request; headers are name, value pairs.
func newRequest(t *testing.T, method, url, body string, headers ...string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}
