package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/server"
)

// waitClosed reads from c until the server closes it and returns how long
// that took; it fails the test if c is still open after limit.
func waitClosed(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	require.NoError(t, c.SetReadDeadline(start.Add(limit)))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s", limit)
	}
	return time.Since(start)
}

func TestHTTPServerLimits(t *testing.T) {
	t.Parallel()

	t.Run("SlowLorisBodyIsCutOffAtReadTimeout", func(t *testing.T) {
		t.Parallel()
		b := startApp(t, func(c *app.Config) {
			c.HTTP = server.HTTPConfig{ReadHeaderTimeout: time.Second, ReadTimeout: 1500 * time.Millisecond, IdleTimeout: 10 * time.Second}
		})
		c, err := net.Dial("tcp", b.addr)
		require.NoError(t, err)
		defer c.Close()
		body := `{"customer_id":"slow","type":"signed_up"}`
		start := time.Now()
		_, err = io.WriteString(c, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+apiToken+
			"\r\nContent-Type: application/json\r\nContent-Length: "+itoa(uint16(len(body)))+"\r\n\r\n")
		require.NoError(t, err)
		// One byte every 300 ms: the whole body would take 12 s.
		go func() {
			for i := range len(body) {
				if _, err := c.Write([]byte{body[i]}); err != nil {
					return
				}
				time.Sleep(300 * time.Millisecond)
			}
		}()
		waitClosed(t, c, 5*time.Second)
		elapsed := time.Since(start)
		t.Logf("slow body cut off after %s", elapsed)
		require.Less(t, elapsed, 3*time.Second, "closed within the read timeout")
		require.Equal(t, 0, b.db.Count(t, "events", ""), "the partial event is not stored")
	})

	t.Run("IdleKeepAliveIsClosedAtIdleTimeout", func(t *testing.T) {
		t.Parallel()
		b := startApp(t, func(c *app.Config) {
			c.HTTP = server.HTTPConfig{IdleTimeout: 700 * time.Millisecond}
		})
		c, err := net.Dial("tcp", b.addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.False(t, resp.Close, "keep-alive")
		idle := waitClosed(t, c, 5*time.Second)
		t.Logf("idle keep-alive closed after %s", idle)
		require.Greater(t, idle, 500*time.Millisecond)
		require.Less(t, idle, 2*time.Second)
	})

	t.Run("ConnectionsOverTheCapWait", func(t *testing.T) {
		t.Parallel()
		b := startApp(t, func(c *app.Config) {
			c.HTTP = server.HTTPConfig{MaxConnections: 2, IdleTimeout: 30 * time.Second}
		})
		// Two idle keep-alive connections fill the cap.
		var held []net.Conn
		for range 2 {
			c, err := net.Dial("tcp", b.addr)
			require.NoError(t, err)
			defer c.Close()
			_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			held = append(held, c)
		}
		third, err := net.Dial("tcp", b.addr)
		require.NoError(t, err)
		defer third.Close()
		_, err = io.WriteString(third, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		require.NoError(t, third.SetReadDeadline(time.Now().Add(500*time.Millisecond)))
		br := bufio.NewReader(third)
		_, err = br.Peek(1)
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "a third connection is not served while two are open: %v", err)

		// One closes: the waiting connection is served.
		require.NoError(t, held[0].Close())
		require.NoError(t, third.SetReadDeadline(time.Now().Add(5*time.Second)))
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})

	t.Run("RequestBehindRowLockGets503InTime", func(t *testing.T) {
		t.Parallel()
		b := startApp(t, func(c *app.Config) {
			c.HTTP = server.HTTPConfig{RequestTimeout: time.Second}
		})
		event := func(key string) *http.Request {
			return newRequest(t, http.MethodPost, b.url+"/v1/events",
				`{"customer_id":"locked","type":"signed_up","idempotency_key":"`+key+`"}`,
				"Authorization", "Bearer "+apiToken, "Content-Type", "application/json")
		}
		resp, body := do(t, event("k1"))
		require.Equal(t, http.StatusAccepted, resp.StatusCode, body)

		ctx := context.Background()
		tx, err := b.db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		var id string
		require.NoError(t, tx.QueryRow(ctx, "SELECT id FROM customers WHERE id = 'locked' FOR UPDATE").Scan(&id))

		start := time.Now()
		resp, body = do(t, event("k2"))
		elapsed := time.Since(start)
		t.Logf("request behind a row lock answered %d after %s: %s", resp.StatusCode, elapsed, body)
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
		// The lock is held until after the answer, so the 503 itself shows the
		// 1 s deadline fired; the bound only rules out a later timeout (the 30 s
		// write timeout), with room for a loaded CI machine.
		require.Less(t, elapsed, 10*time.Second)
		require.Contains(t, body, `"request_id":"`+resp.Header.Get(server.RequestIDHeader)+`"`)
		require.NotContains(t, body, "context deadline")
		require.NoError(t, tx.Rollback(ctx))
		require.Equal(t, 0, b.db.Count(t, "events", "idempotency_key = 'k2'"), "the timed-out event is not stored")

		// With the lock gone the retry goes through.
		resp, body = do(t, event("k2"))
		require.Equal(t, http.StatusAccepted, resp.StatusCode, body)
	})
}
