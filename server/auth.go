package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SessionCookie names the cookie /login sets for the browser surfaces.
const SessionCookie = "ciclo_session"

// SessionTTLDefault is how long a login lasts.
const SessionTTLDefault = 12 * time.Hour

// authenticator checks the credentials of every route kind: the API token,
// the metrics token, and the UI's session cookie or basic auth.
type authenticator struct {
	apiToken, metricsToken string
	uiUser, uiPassword     string
	// sessionKey signs session cookies. It is derived from the secret and
	// the credentials, so that changing a password or token ends every
	// session made with the old one.
	sessionKey   []byte
	secureCookie bool
	sessionTTL   time.Duration
	now          func() time.Time
	origins      *http.CrossOriginProtection
}

// authConfig configures an authenticator.
type authConfig struct {
	apiToken, metricsToken, uiUser, uiPassword string
	// secret signs sessions; empty: a random key of this process.
	secret string
	// publicURL is where browsers reach ciclo: an https URL makes the
	// session cookie Secure, and its origin is trusted for state-changing
	// requests even when a proxy rewrites Host.
	publicURL  string
	sessionTTL time.Duration
	now        func() time.Time
}

func newAuthenticator(c authConfig) *authenticator {
	secret := []byte(c.secret)
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("ciclo session v1\x00" + c.apiToken + "\x00" + c.uiUser + "\x00" + c.uiPassword))
	a := &authenticator{
		apiToken: c.apiToken, metricsToken: c.metricsToken, uiUser: c.uiUser, uiPassword: c.uiPassword,
		sessionKey: mac.Sum(nil), sessionTTL: c.sessionTTL, now: c.now,
		origins: http.NewCrossOriginProtection(),
	}
	if a.sessionTTL <= 0 {
		a.sessionTTL = SessionTTLDefault
	}
	if a.now == nil {
		a.now = time.Now
	}
	if u, err := url.Parse(c.publicURL); err == nil && u.Host != "" {
		a.secureCookie = u.Scheme == "https"
		// AddTrustedOrigin only fails on a malformed origin, which a
		// parsed URL's scheme and host are not.
		_ = a.origins.AddTrustedOrigin(u.Scheme + "://" + u.Host)
	}
	a.origins.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "cross-origin request refused: state-changing requests must come from ciclo's own pages "+
			"(a script without Origin and Sec-Fetch-Site headers may send them with its credentials)", http.StatusForbidden)
	}))
	return a
}

// requireToken lets a request through with the API bearer token.
func (a *authenticator) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearer(r)
		if !ok || !anyEqual(got, a.apiToken) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ciclo"`)
			msg := "missing bearer token: send the header `Authorization: Bearer $CICLO_API_TOKEN`"
			if ok {
				msg = "wrong bearer token: check CICLO_API_TOKEN"
			}
			writeError(w, http.StatusUnauthorized, "", msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireMetrics lets a request through with the metrics or the API token.
func (a *authenticator) requireMetrics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got, ok := bearer(r); ok && anyEqual(got, a.metricsToken, a.apiToken) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="ciclo"`)
		writeError(w, http.StatusUnauthorized, "", "missing or wrong bearer token: send `Authorization: Bearer $CICLO_METRICS_TOKEN` (or the API token)")
	})
}

// requireUI lets a request through with a session cookie, the UI user's
// basic auth or the API token. An unauthenticated page load by a browser
// is redirected to the login page; anything else answers 401.
func (a *authenticator) requireUI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.uiAuthorized(r) {
			next.ServeHTTP(w, r)
			return
		}
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("Authorization") == "" && wantsPage(r) {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		switch {
		case r.Header.Get("Sec-Fetch-Mode") != "" && r.Header.Get("Authorization") == "":
			// A browser's script whose session ended: no challenge, so the
			// browser does not pop up a password dialog over the page.
		case a.basicEnabled():
			w.Header().Set("WWW-Authenticate", `Basic realm="ciclo", charset="UTF-8"`)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="ciclo"`)
		}
		http.Error(w, "not logged in: log in at /login, use basic auth as CICLO_UI_USER, or send `Authorization: Bearer $CICLO_API_TOKEN`", http.StatusUnauthorized)
	})
}

// sameOrigin refuses state-changing requests a browser sends from another
// origin (by Sec-Fetch-Site, else Origin against Host or the public URL).
// Requests without either header are not from a browser page and pass:
// they still need their credentials.
func (a *authenticator) sameOrigin(next http.Handler) http.Handler {
	return a.origins.Handler(next)
}

// uiAuthorized reports whether r carries UI credentials.
func (a *authenticator) uiAuthorized(r *http.Request) bool {
	if got, ok := bearer(r); ok {
		return anyEqual(got, a.apiToken)
	}
	if user, pass, ok := r.BasicAuth(); ok {
		return a.basicEnabled() && a.checkUser(user, pass)
	}
	c, err := r.Cookie(SessionCookie)
	return err == nil && a.validSession(c.Value)
}

func (a *authenticator) basicEnabled() bool { return a.uiUser != "" && a.uiPassword != "" }

// checkUser reports whether user and password are the UI user's. Both are
// compared, always, so timing does not tell which was wrong.
func (a *authenticator) checkUser(user, pass string) bool {
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.uiUser))
	passOK := subtle.ConstantTimeCompare([]byte(pass), []byte(a.uiPassword))
	return userOK&passOK == 1
}

// checkLogin reports whether a login form's user and password open the
// UI: the UI user and password, or the API token as password.
func (a *authenticator) checkLogin(user, pass string) bool {
	okUser := a.basicEnabled() && a.checkUser(user, pass)
	okToken := anyEqual(pass, a.apiToken)
	return okUser || okToken
}

// newSession returns a session cookie value valid for sessionTTL.
func (a *authenticator) newSession() (value string, expires time.Time) {
	expires = a.now().Add(a.sessionTTL).Truncate(time.Second)
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + a.sign(exp), expires
}

func (a *authenticator) validSession(v string) bool {
	exp, sig, ok := strings.Cut(v, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(a.sign(exp))) {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	return err == nil && a.now().Before(time.Unix(unix, 0))
}

func (a *authenticator) sign(s string) string {
	mac := hmac.New(sha256.New, a.sessionKey)
	mac.Write([]byte(s))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// sessionCookie returns the session cookie with value, or one that clears
// it when value is empty.
func (a *authenticator) sessionCookie(value string, expires time.Time) *http.Cookie {
	c := &http.Cookie{
		Name: SessionCookie, Value: value, Path: "/", Expires: expires,
		HttpOnly: true, Secure: a.secureCookie, SameSite: http.SameSiteStrictMode,
	}
	if value == "" {
		c.MaxAge = -1
		c.Expires = time.Time{}
	}
	return c
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) (string, bool) {
	return strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// wantsPage reports whether r is a browser loading a page (not a script).
func wantsPage(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Mode") == "navigate" || strings.Contains(r.Header.Get("Accept"), "text/html")
}

// anyEqual reports in constant time per token whether got is one of the
// non-empty tokens.
func anyEqual(got string, tokens ...string) bool {
	ok := false
	for _, t := range tokens {
		if t != "" && subtle.ConstantTimeCompare([]byte(got), []byte(t)) == 1 {
			ok = true
		}
	}
	return ok
}
