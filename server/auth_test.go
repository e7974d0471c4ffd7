package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/jobs"
	"github.com/ciclohq/ciclo/server"
)

// insertJob adds a River job the UI can delete; it stays available since
// an API process works no jobs.
func insertJob(t *testing.T, b *appBundle) int64 {
	t.Helper()
	res, err := b.app.River.Insert(context.Background(), jobs.EvaluateArgs{CustomerID: "c1", EventID: 1}, nil)
	require.NoError(t, err)
	return res.Job.ID
}

func jobExists(t *testing.T, b *appBundle, id int64) bool {
	t.Helper()
	return b.db.Count(t, "river_job", "id = $1", id) == 1
}

// deleteJob asks the River UI to delete job id, as its page would (or as a
// cross-site text/plain form would); headers are name, value pairs.
func deleteJob(t *testing.T, b *appBundle, id int64, headers ...string) (*http.Response, string) {
	t.Helper()
	body := `{"ids":["` + strconv.FormatInt(id, 10) + `"]}`
	return do(t, newRequest(t, http.MethodPost, b.url+"/riverui/api/jobs/delete", body, headers...))
}

// login posts the login form from ciclo's own page.
func login(t *testing.T, b *appBundle, user, password, next string) (*http.Response, string) {
	t.Helper()
	form := url.Values{"user": {user}, "password": {password}, "next": {next}}
	return do(t, newRequest(t, http.MethodPost, b.url+"/login", form.Encode(),
		"Content-Type", "application/x-www-form-urlencoded", "Origin", b.url, "Sec-Fetch-Site", "same-origin"))
}

func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == server.SessionCookie {
			return c
		}
	}
	return nil
}

func TestUILogin(t *testing.T) {
	t.Parallel()
	b := startApp(t, nil)
	basic := "Basic " + basicAuth(uiUser, uiPassword)

	t.Run("CrossOriginWriteWithBasicAuthIsRefused", func(t *testing.T) {
		t.Parallel()
		id := insertJob(t, b)
		for _, headers := range [][]string{
			// A browser today: Sec-Fetch-Site and Origin.
			{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"},
			// An older browser: Origin only.
			{"Origin", "https://evil.example"},
			// Another site on the same host.
			{"Sec-Fetch-Site", "same-site", "Origin", "http://127.0.0.1:1"},
		} {
			resp, body := deleteJob(t, b, id, append([]string{"Authorization", basic, "Content-Type", "text/plain"}, headers...)...)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, "%v: %s", headers, body)
			require.Contains(t, body, "cross-origin request refused")
			require.True(t, jobExists(t, b, id), "%v: the job is still there", headers)
		}
		// Reading stays possible with basic auth, and a script without
		// browser headers can still write with it.
		resp, body := do(t, newRequest(t, http.MethodGet, b.url+"/riverui/api/jobs?state=available", "", "Authorization", basic))
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		resp, body = deleteJob(t, b, id, "Authorization", basic, "Content-Type", "application/json")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.False(t, jobExists(t, b, id))
	})

	t.Run("BearerTokenScriptsStillWork", func(t *testing.T) {
		t.Parallel()
		id := insertJob(t, b)
		resp, body := deleteJob(t, b, id, "Authorization", "Bearer "+apiToken, "Content-Type", "application/json")
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.False(t, jobExists(t, b, id))
	})

	t.Run("BrowserWithoutLoginIsSentToLogin", func(t *testing.T) {
		t.Parallel()
		resp, body := do(t, newRequest(t, http.MethodGet, b.url+"/riverui/jobs?state=running", "",
			"Accept", "text/html,application/xhtml+xml", "Sec-Fetch-Mode", "navigate"))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		require.Equal(t, "/login?next="+url.QueryEscape("/riverui/jobs?state=running"), resp.Header.Get("Location"))

		resp, body = do(t, newRequest(t, http.MethodGet, b.url+"/login?next=%2Friverui%2Fjobs", ""))
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, body, `name="password" type="password"`)
		require.Contains(t, body, `name="next" value="/riverui/jobs"`)
		require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))

		// A script gets 401, not a redirect.
		resp, _ = do(t, newRequest(t, http.MethodGet, b.url+"/riverui/api/jobs", ""))
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})

	t.Run("WrongPasswordIs401WithoutCookie", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct{ user, password string }{
			{uiUser, "wrong"}, {"someone", uiPassword}, {"", ""}, {uiUser, apiToken + "x"},
		} {
			resp, body := login(t, b, c.user, c.password, "/riverui/")
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, body)
			require.Contains(t, body, "Wrong user or password")
			require.Empty(t, resp.Header.Values("Set-Cookie"))
		}
	})

	t.Run("LoginSetsStrictHttpOnlyCookieThatOpensTheUI", func(t *testing.T) {
		t.Parallel()
		resp, body := login(t, b, uiUser, uiPassword, "/riverui/jobs")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		require.Equal(t, "/riverui/jobs", resp.Header.Get("Location"))
		c := sessionCookie(resp)
		require.NotNil(t, c)
		require.True(t, c.HttpOnly)
		require.Equal(t, http.SameSiteStrictMode, c.SameSite)
		require.Equal(t, "/", c.Path)
		require.False(t, c.Secure, "the public URL is http")
		require.Contains(t, resp.Header.Get("Set-Cookie"), "SameSite=Strict")
		cookie := server.SessionCookie + "=" + c.Value

		// The page, and a same-origin write, work with the cookie.
		resp, body = do(t, newRequest(t, http.MethodGet, b.url+"/riverui/", "", "Cookie", cookie, "Accept", "text/html"))
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		id := insertJob(t, b)
		resp, body = deleteJob(t, b, id, "Cookie", cookie, "Content-Type", "application/json",
			"Sec-Fetch-Site", "same-origin", "Origin", b.url)
		require.Equal(t, http.StatusOK, resp.StatusCode, body)
		require.False(t, jobExists(t, b, id))

		// Cross-origin with the cookie is refused too.
		id = insertJob(t, b)
		resp, _ = deleteJob(t, b, id, "Cookie", cookie, "Content-Type", "text/plain",
			"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.True(t, jobExists(t, b, id))

		// A forged or altered cookie opens nothing.
		for _, v := range []string{c.Value + "x", "9999999999." + strings.SplitN(c.Value, ".", 2)[1], "garbage"} {
			resp, _ = do(t, newRequest(t, http.MethodGet, b.url+"/riverui/api/jobs", "", "Cookie", server.SessionCookie+"="+v))
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, v)
		}

		// Logout clears the cookie.
		resp, _ = do(t, newRequest(t, http.MethodPost, b.url+"/logout", "", "Cookie", cookie,
			"Sec-Fetch-Site", "same-origin", "Origin", b.url))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		cleared := sessionCookie(resp)
		require.NotNil(t, cleared)
		require.Empty(t, cleared.Value)
		require.Negative(t, cleared.MaxAge)
	})

	t.Run("APITokenAsPasswordLogsIn", func(t *testing.T) {
		t.Parallel()
		resp, body := login(t, b, "", apiToken, "")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
		require.Equal(t, "/riverui/", resp.Header.Get("Location"))
		require.NotNil(t, sessionCookie(resp))
	})

	t.Run("NextStaysOnSite", func(t *testing.T) {
		t.Parallel()
		for _, next := range []string{"https://evil.example/", "//evil.example/x", `/\evil.example`, "javascript:alert(1)"} {
			resp, body := login(t, b, uiUser, uiPassword, next)
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
			require.Equal(t, "/riverui/", resp.Header.Get("Location"), next)
		}
	})

	t.Run("CrossOriginLoginIsRefused", func(t *testing.T) {
		t.Parallel()
		form := url.Values{"user": {uiUser}, "password": {uiPassword}}
		resp, _ := do(t, newRequest(t, http.MethodPost, b.url+"/login", form.Encode(),
			"Content-Type", "application/x-www-form-urlencoded", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"))
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		require.Nil(t, sessionCookie(resp))
	})
}

func TestUILoginAcrossProcesses(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	one := startAppOn(t, db, db.URL, func(c *app.Config) { c.PublicURL = "https://ciclo.example" })
	two := startAppOn(t, db, db.URL, func(c *app.Config) { c.PublicURL = "https://ciclo.example" })

	resp, body := login(t, one, uiUser, uiPassword, "/riverui/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	c := sessionCookie(resp)
	require.NotNil(t, c)
	require.True(t, c.Secure, "the public URL is https")

	// The other process accepts the session: they share the signing secret.
	resp, body = do(t, newRequest(t, http.MethodGet, two.url+"/riverui/api/jobs", "", "Cookie", server.SessionCookie+"="+c.Value))
	require.Equal(t, http.StatusOK, resp.StatusCode, body)

	// Behind a proxy Host is not the public URL's: its origin is trusted.
	id := insertJob(t, two)
	resp, body = deleteJob(t, two, id, "Cookie", server.SessionCookie+"="+c.Value, "Content-Type", "application/json",
		"Origin", "https://ciclo.example", "Sec-Fetch-Site", "same-origin")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.False(t, jobExists(t, two, id))
}

func basicAuth(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}
