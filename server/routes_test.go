package server_test

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/server"
)

// TestRouteTable walks the route table the process serves and checks each
// route's auth rule with real requests: without credentials, with the
// metrics token and with the API token; then that the body limit and
// deadline it states hold, and that the README's table lists it as served.
func TestRouteTable(t *testing.T) {
	t.Parallel()
	b := startApp(t, nil)
	routes := b.app.Routes()
	require.NotEmpty(t, routes)

	wildcard := regexp.MustCompile(`\{[^}]+\}`)
	request := func(t *testing.T, rt server.Route, body string, headers ...string) (*http.Response, string) {
		t.Helper()
		method := rt.Method()
		if method == "" {
			method = http.MethodGet
		}
		path := wildcard.ReplaceAllString(strings.ReplaceAll(rt.Path(), "{$}", ""), "x")
		return do(t, newRequest(t, method, b.url+path, body, headers...))
	}

	seen := map[string]bool{}
	for _, rt := range routes {
		require.False(t, seen[rt.Pattern], "route %q registered twice", rt.Pattern)
		seen[rt.Pattern] = true
		t.Run(rt.Pattern, func(t *testing.T) {
			resp, body := request(t, rt, "", "Accept", "application/json")
			challenged := isChallenge(resp)
			switch rt.Auth {
			case server.AuthPublic:
				require.False(t, challenged, "public route asks for credentials: %d %s", resp.StatusCode, body)
				require.NotEqual(t, http.StatusForbidden, resp.StatusCode, body)
			case server.AuthToken, server.AuthMetrics, server.AuthUI, server.AuthSignature:
				require.True(t, challenged, "no credentials: want 401 with a challenge, got %d %s", resp.StatusCode, body)
			default:
				t.Fatalf("route has auth rule %v", rt.Auth)
			}
			if rt.Auth == server.AuthUI && (rt.Method() == "" || rt.Method() == http.MethodGet) {
				resp, _ := request(t, rt, "", "Accept", "text/html", "Sec-Fetch-Mode", "navigate")
				require.Equal(t, http.StatusSeeOther, resp.StatusCode, "a browser is sent to log in")
				require.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/login?next="), resp.Header.Get("Location"))
			}

			// The metrics token opens /metrics only; the API token everything.
			resp, body = request(t, rt, "", "Authorization", "Bearer "+metricsToken)
			wantChallenge := rt.Auth == server.AuthToken || rt.Auth == server.AuthUI || rt.Auth == server.AuthSignature
			require.Equal(t, wantChallenge, isChallenge(resp), "metrics token: %d %s", resp.StatusCode, body)
			resp, body = request(t, rt, "", "Authorization", "Bearer "+apiToken)
			// A store's webhook is opened by its signature only.
			require.Equal(t, rt.Auth == server.AuthSignature, isChallenge(resp), "API token: %d %s", resp.StatusCode, body)

			// A body over the limit is refused before anything reads it.
			resp, body = request(t, rt, strings.Repeat("x", int(rt.MaxBody)+1),
				"Authorization", "Bearer "+apiToken, "Sec-Fetch-Site", "same-origin")
			require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, body)

			// Every route has a deadline: the request default, or a longer
			// one it states (reports over a large history).
			require.True(t, rt.Timeout == server.RequestTimeoutDefault || rt.Timeout == 2*time.Minute, "route deadline %s", rt.Timeout)
		})
	}

	t.Run("NothingOutsideTheTable", func(t *testing.T) {
		resp, body := do(t, newRequest(t, http.MethodGet, b.url+"/v2/anything", "", "Authorization", "Bearer "+apiToken))
		require.Equal(t, http.StatusNotFound, resp.StatusCode, body)
	})

	t.Run("ReadmeListsEveryRoute", func(t *testing.T) {
		readme, err := os.ReadFile("../README.md")
		require.NoError(t, err)
		for _, rt := range routes {
			row := readmeRow(rt)
			if !strings.Contains(string(readme), row+"\n") {
				t.Errorf("README.md's HTTP table lacks or misstates a route; want the row\n%s", row)
			}
		}
		c := server.HTTPConfig{}.WithDefaults()
		conn := fmt.Sprintf("| every connection | | | | read header %s, read %s, write %s, idle %s; at most %d connections |",
			human(c.ReadHeaderTimeout), human(c.ReadTimeout), human(c.WriteTimeout), human(c.IdleTimeout), c.MaxConnections)
		if !strings.Contains(string(readme), conn+"\n") {
			t.Errorf("README.md's HTTP table lacks the connection limits; want the row\n%s", conn)
		}
	})
}

// isChallenge reports whether resp asks for credentials.
func isChallenge(resp *http.Response) bool {
	return resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != ""
}

// readmeRow is a route's row in the README's table.
func readmeRow(rt server.Route) string {
	origin := "—"
	if rt.SameOrigin {
		origin = "refused"
	}
	body := "none"
	switch {
	case rt.MaxBody >= 1<<20:
		body = fmt.Sprintf("%d MiB", rt.MaxBody>>20)
	case rt.MaxBody > 0:
		body = fmt.Sprintf("%d KiB", rt.MaxBody>>10)
	}
	return fmt.Sprintf("| `%s` | %s | %s | %s | request %s |", rt.Pattern, rt.Auth, origin, body, human(rt.Timeout))
}

func human(d time.Duration) string { return fmt.Sprintf("%d s", int(d.Seconds())) }
