package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
)

// TestUnavailableBodies checks that a 503 answers a short message and the
// request id, and that the database's error, with its SQLSTATE, user and
// host, goes to the log under that id only.
func TestUnavailableBodies(t *testing.T) {
	t.Parallel()

	// check asserts a 503 body and its log line; leaks are strings the
	// body must not contain, logged what the log must.
	check := func(t *testing.T, b *appBundle, resp *http.Response, body string, leaks []string, logged string) {
		t.Helper()
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
		id := resp.Header.Get("X-Request-Id")
		require.NotEmpty(t, id)
		var e struct {
			Error struct {
				Message   string `json:"message"`
				RequestID string `json:"request_id"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &e), body)
		require.Equal(t, id, e.Error.RequestID)
		require.NotEmpty(t, e.Error.Message)
		for _, leak := range leaks {
			require.NotContains(t, body, leak)
		}
		// The log line with the detail carries the request id.
		found := false
		for _, line := range splitLines(b.logs.String()) {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil || rec["request_id"] != id || rec["level"] != "ERROR" {
				continue
			}
			if s, _ := rec["error"].(string); s != "" {
				require.Contains(t, s, logged)
				found = true
			}
		}
		require.True(t, found, "an ERROR line with request_id %s and the error", id)
	}
	post := func(t *testing.T, b *appBundle, path, body string) (*http.Response, string) {
		t.Helper()
		return do(t, newRequest(t, http.MethodPost, b.url+path, body,
			"Authorization", "Bearer "+apiToken, "Content-Type", "application/json", "X-Request-Id", ""))
	}

	t.Run("SQLErrorIsLoggedNotShown", func(t *testing.T) {
		t.Parallel()
		b := startApp(t, nil)
		_, err := b.db.Pool.Exec(context.Background(), "DROP TABLE events CASCADE; DROP TABLE suppressions CASCADE")
		require.NoError(t, err)

		resp, body := post(t, b, "/v1/events", `{"customer_id":"c1","type":"signed_up"}`)
		check(t, b, resp, body, []string{"SQLSTATE", "42P01", "relation", "events\" does not exist"}, "SQLSTATE 42P01")
		require.Contains(t, body, "retry with the same idempotency keys")

		resp, body = post(t, b, "/v1/suppressions", `{"email":"ana@example.com"}`)
		check(t, b, resp, body, []string{"SQLSTATE", "42P01", "relation"}, "SQLSTATE 42P01")
	})

	t.Run("OutageDoesNotNameUserDatabaseOrHost", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		cfg, err := pgxpool.ParseConfig(db.URL)
		require.NoError(t, err)
		proxy := startProxy(t, cfg.ConnConfig.Host+":"+itoa(cfg.ConnConfig.Port))
		url := "postgres://" + cfg.ConnConfig.User + "@" + proxy.ln.Addr().String() + "/" + cfg.ConnConfig.Database +
			"?sslmode=disable&connect_timeout=1&search_path=" + db.Schema
		b := startAppOn(t, db, url, nil)

		proxy.setDown(true)
		_, port := splitPort(proxy.ln.Addr().String())
		leaks := []string{"SQLSTATE", "user=", cfg.ConnConfig.User, cfg.ConnConfig.Database, "127.0.0.1", port}
		for range 2 { // the first may meet a cut connection, the second a refused one
			resp, body := post(t, b, "/v1/events", `{"customer_id":"c1","type":"signed_up"}`)
			check(t, b, resp, body, leaks, "")
		}
		require.Contains(t, b.logs.String(), "failed to connect", "the log keeps the detail")
	})
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

func splitPort(addr string) (host, port string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	return addr, ""
}
