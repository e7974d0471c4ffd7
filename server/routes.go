package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Body limits of routes that read small bodies.
const (
	// maxFormBody caps a form post (login, logout, unsubscribe): a few fields.
	maxFormBody = 4 << 10
	// maxUIBody caps a River UI API request: job ids, queue settings.
	maxUIBody = 1 << 20
)

// Auth is who may call a route. Every route names one: a route without
// one cannot be registered, so none ships open by accident.
type Auth int

// The auth rules of routes.
const (
	// The zero value names no rule: registering such a route panics.
	_ Auth = iota
	// AuthPublic routes need no credentials: probes, unsubscribe links,
	// the login page.
	AuthPublic
	// AuthToken routes need the API bearer token (CICLO_API_TOKEN).
	AuthToken
	// AuthMetrics routes need the metrics token or the API token.
	AuthMetrics
	// AuthUI routes are browser surfaces: a session cookie from /login, the
	// UI user's basic auth, or the API token as bearer token. An
	// unauthenticated browser page load is sent to /login.
	AuthUI
	// AuthSignature routes are store webhooks: the route's Verify accepts
	// the HMAC signature header of the raw body (Shopify, WooCommerce).
	// The API token does not open them.
	AuthSignature
)

// String names the rule as the README's route table does.
func (a Auth) String() string {
	switch a {
	case AuthPublic:
		return "public"
	case AuthToken:
		return "API token"
	case AuthMetrics:
		return "metrics token or API token"
	case AuthUI:
		return "UI login (session cookie, basic auth) or API token"
	case AuthSignature:
		return "HMAC signature of the body"
	}
	return "unset"
}

// Route is one entry of the route table: the table both registers the
// routes and is what tests and the README walk, so a route's auth rule,
// body limit and deadline are stated in one place.
type Route struct {
	// Pattern is the http.ServeMux pattern, e.g. "POST /v1/events".
	Pattern string
	// Auth is who may call the route. Required.
	Auth Auth
	// SameOrigin refuses state-changing requests (not GET, HEAD or OPTIONS)
	// that a browser sends from another origin, against CSRF. Browser
	// surfaces (AuthUI, login) set it.
	SameOrigin bool
	// MaxBody caps the request body in bytes; 0: the route takes no body.
	// A longer body is answered 413.
	MaxBody int64
	// TooLarge, optional, is the advice of the 413 answer.
	TooLarge string
	// Timeout is the deadline of the request's context: a request stuck
	// behind a lock is cancelled and answered 503. 0: none.
	Timeout time.Duration
	// Handler serves the route.
	Handler http.Handler
	// Verify checks the signature of an AuthSignature route's raw body
	// before anything parses it. Required for AuthSignature.
	Verify func(http.Header, []byte) error
}

// routeGuards applies the rules a Route states.
type routeGuards struct {
	auth *authenticator
}

// register adds rt to mux behind its body limit, deadline, origin check and
// auth rule. It panics on a route without an auth rule: a programmer error.
func (g *routeGuards) register(mux *http.ServeMux, rt Route) {
	h := rt.Handler
	switch rt.Auth {
	case AuthPublic:
	case AuthToken:
		h = g.auth.requireToken(h)
	case AuthMetrics:
		h = g.auth.requireMetrics(h)
	case AuthUI:
		h = g.auth.requireUI(h)
	case AuthSignature:
		if rt.Verify == nil {
			panic(fmt.Sprintf("server: route %q has no signature check", rt.Pattern))
		}
		h = requireSignature(rt.Verify, h)
	default:
		panic(fmt.Sprintf("server: route %q has no auth rule", rt.Pattern))
	}
	if rt.SameOrigin {
		h = g.auth.sameOrigin(h)
	}
	h = withLimits(h, rt)
	mux.Handle(rt.Pattern, h)
}

// withLimits caps the body and sets the request's deadline. A body that
// announces its length over the cap is refused before anything reads it;
// one sent chunked fails the handler's read at the cap.
func withLimits(next http.Handler, rt Route) http.Handler {
	advice := rt.TooLarge
	if advice == "" {
		advice = "send a smaller body"
	}
	msg := fmt.Sprintf("request body is larger than %d bytes: %s", rt.MaxBody, advice)
	if rt.MaxBody == 0 {
		msg = rt.Pattern + " takes no request body"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > rt.MaxBody {
			writeError(w, http.StatusRequestEntityTooLarge, "", msg)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, rt.MaxBody)
		if rt.Timeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), rt.Timeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(w, r)
	})
}

// Method returns the route's method, "" when the pattern matches any.
func (rt Route) Method() string {
	if m, _, ok := strings.Cut(rt.Pattern, " "); ok {
		return m
	}
	return ""
}

// Path returns the route's path pattern, without the method.
func (rt Route) Path() string {
	if _, p, ok := strings.Cut(rt.Pattern, " "); ok {
		return p
	}
	return rt.Pattern
}
