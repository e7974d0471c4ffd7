package server_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/server"
)

// switchProxy forwards TCP connections to a target while up; down cuts
// every connection and refuses new ones, like a database that went away.
type switchProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &switchProxy{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *switchProxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

func (p *switchProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func TestOpsReadyz(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	rs, _, err := app.LoadRules(filepath.Join("..", "rules.example.yaml"))
	require.NoError(t, err)
	rules := rules.NewHolder(rs)

	newOps := func(t *testing.T, url string) http.Handler {
		t.Helper()
		cfg, err := pgxpool.ParseConfig(url)
		require.NoError(t, err)
		// Room for a loaded CI machine, where a new connection and the schema
		// check took over 1 s: the probes that must fail fail at once (a
		// refused or dropped connection), not by running out of time.
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		return server.NewOps(&server.OpsConfig{Pool: pool, Rules: rules, APIToken: "tok", ReadyTimeout: 5 * time.Second}).Handler()
	}
	probe := func(t *testing.T, h http.Handler, path string) (int, string) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}

	t.Run("WrongPortIsUnready", func(t *testing.T) {
		t.Parallel()
		// A port nothing listens on: take one and release it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		h := newOps(t, "postgres://postgres@"+addr+"/ciclo_test?sslmode=disable")

		start := time.Now()
		code, body := probe(t, h, "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, code, body)
		require.JSONEq(t, `{"status":"unready","rules_version":"`+rs.Version+`",
			"checks":{"database":"unreachable","migrations":"not checked","rules":"ok"}}`, body)
		require.Less(t, time.Since(start), 3*time.Second)

		code, body = probe(t, h, "/healthz")
		require.Equal(t, http.StatusOK, code, body, "the process is up even without its database")
	})

	t.Run("UnreadyWhileDatabaseIsGoneAndReadyAgain", func(t *testing.T) {
		t.Parallel()
		cfg, err := pgxpool.ParseConfig(db.URL)
		require.NoError(t, err)
		target := net.JoinHostPort(cfg.ConnConfig.Host, itoa(cfg.ConnConfig.Port))
		proxy := startProxy(t, target)
		url := "postgres://" + cfg.ConnConfig.User + "@" + proxy.ln.Addr().String() + "/" + cfg.ConnConfig.Database +
			"?sslmode=disable&search_path=" + db.Schema
		h := newOps(t, url)

		code, body := probe(t, h, "/readyz")
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `"rules_version":"`+rs.Version+`"`)

		proxy.setDown(true)
		code, body = probe(t, h, "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, code, body)
		require.Contains(t, body, `"database":"unreachable"`)

		proxy.setDown(false)
		code, body = probe(t, h, "/readyz")
		require.Equal(t, http.StatusOK, code, body)
	})

	t.Run("SchemaBehindIsUnready", func(t *testing.T) {
		t.Parallel()
		// A schema with no migrations applied.
		schema := db.Schema + "_empty"
		_, err := db.Pool.Exec(context.Background(), "CREATE SCHEMA "+schema)
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = db.Pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
		h := newOps(t, testdb.WithSearchPath(testdb.URL(), schema))
		code, body := probe(t, h, "/readyz")
		require.Equal(t, http.StatusServiceUnavailable, code, body)
		require.Contains(t, body, `"database":"ok"`)
		require.Contains(t, body, `"migrations":"schema is behind: run `+"`ciclo migrate`"+`"`)
	})
}

func itoa(n uint16) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	rs, _, err := app.LoadRules(filepath.Join("..", "rules.example.yaml"))
	require.NoError(t, err)
	var logs bytes.Buffer
	logger := slog.New(server.LogHandler(slog.NewJSONHandler(&logs, nil)))
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.InfoContext(r.Context(), "inner")
		w.WriteHeader(http.StatusTeapot)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /unsubscribe/{token}", api)
	h := server.NewOps(&server.OpsConfig{Pool: db.Pool, Rules: rules.NewHolder(rs), APIToken: "tok", API: mux, Logger: logger}).Handler()

	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/unsubscribe/secret-token-with-email", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusTeapot, rec.Code)
	require.Equal(t, "abc-123", rec.Header().Get("X-Request-Id"))
	require.NotContains(t, logs.String(), "secret-token", "paths are not logged")
	require.Contains(t, logs.String(), `"msg":"inner","request_id":"abc-123"`)
	require.Contains(t, logs.String(), `"route":"GET /unsubscribe/{token}","status":418`)

	// A client id that could forge log lines is replaced.
	rec = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodGet, "/healthz", nil)
	req.Header.Set("X-Request-Id", "a\nb")
	h.ServeHTTP(rec, req)
	require.Len(t, rec.Header().Get("X-Request-Id"), 24)
}
