package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/migrations"
	"github.com/ciclohq/ciclo/rules"
)

// ReadyTimeoutDefault bounds the database checks of one /readyz probe.
const ReadyTimeoutDefault = 2 * time.Second

// OpsConfig configures the process's HTTP front: the operational endpoints
// (/healthz, /readyz, /metrics, /riverui/) and, in front of everything, the
// request id and the access log.
type OpsConfig struct {
	// Pool is the database /readyz checks. Required.
	Pool *pgxpool.Pool
	// Rules holds the rule set /readyz reports. Required.
	Rules *rules.Holder
	// APIToken is the bearer token of the API; it also opens /metrics and
	// /riverui/. Required.
	APIToken string
	// MetricsToken, optional, is a bearer token that opens /metrics only, for
	// a scraper that should not be able to post events.
	MetricsToken string
	// UIUser and UIPassword, optional, open /riverui/ with HTTP basic auth
	// and log in at /login (the API token logs in too).
	UIUser, UIPassword string
	// SessionSecret signs the session cookies of /login; processes that
	// share it accept each other's sessions. Default: a random key of this
	// process (sessions end when it restarts).
	SessionSecret string
	// SessionTTL is how long a login lasts. Default SessionTTLDefault.
	SessionTTL time.Duration
	// PublicURL, optional, is where browsers reach ciclo: with https the
	// session cookie is Secure, and its origin is accepted for
	// state-changing requests even when a proxy rewrites Host.
	PublicURL string
	// RequestTimeout is the deadline of every route's request. Default
	// RequestTimeoutDefault.
	RequestTimeout time.Duration
	// Now is the clock of sessions, default time.Now.
	Now func() time.Time
	// Metrics is served at /metrics. Nil: /metrics answers 404.
	Metrics *metrics.Metrics
	// RiverUI, optional, is served under /riverui/.
	RiverUI http.Handler
	// APIRoutes, optional, are the API's routes (Server.Routes), served
	// with the ops routes from one table. Nil in a worker-only process.
	APIRoutes []Route
	// API, optional, serves every path no route matches. Nil: 404.
	API http.Handler
	// RulesReloadError, optional, returns the error of the last rules
	// reload and when it happened, or "" when that reload succeeded. /readyz
	// shows it: the process stays ready on its last good rule set.
	RulesReloadError func() (string, time.Time)
	// SMTP, optional, checks the SMTP server for /readyz; its error, when it
	// has a Public() string, says what is wrong and how to fix it. A process
	// that serves the API stays ready while SMTP is broken (it still accepts
	// events; emails wait) and shows the problem; a worker-only process is
	// unready.
	SMTP func(context.Context) error
	// ReadyTimeout bounds /readyz's database checks. Default ReadyTimeoutDefault.
	ReadyTimeout time.Duration
	// Logger, default slog.Default().
	Logger *slog.Logger
}

// Ops serves the operational endpoints in front of the API.
type Ops struct {
	cfg  OpsConfig
	auth *authenticator
}

// NewOps returns an Ops. It panics when a required field is missing.
func NewOps(cfg *OpsConfig) *Ops {
	c := *cfg
	if c.Pool == nil || c.Rules == nil || c.APIToken == "" {
		panic("server: OpsConfig needs Pool, Rules and APIToken")
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = ReadyTimeoutDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = RequestTimeoutDefault
	}
	return &Ops{cfg: c, auth: newAuthenticator(authConfig{
		apiToken: c.APIToken, metricsToken: c.MetricsToken, uiUser: c.UIUser, uiPassword: c.UIPassword,
		secret: c.SessionSecret, publicURL: c.PublicURL, sessionTTL: c.SessionTTL, now: c.Now,
	})}
}

// Routes returns the route table of the whole HTTP front: /healthz and
// /readyz need no authentication (load balancers and orchestrators probe
// them); /metrics needs the metrics or the API token; /riverui/ a UI login
// or the API token, and refuses other origins' state-changing requests;
// then the API's routes.
func (o *Ops) Routes() []Route {
	t := o.cfg.RequestTimeout
	routes := []Route{
		{Pattern: "GET /healthz", Auth: AuthPublic, Timeout: t, Handler: http.HandlerFunc(o.healthz)},
		{Pattern: "GET /readyz", Auth: AuthPublic, Timeout: t, Handler: http.HandlerFunc(o.readyz)},
		{Pattern: "GET /metrics", Auth: AuthMetrics, Timeout: t, Handler: o.cfg.Metrics.Handler()},
	}
	routes = append(routes, o.loginRoutes()...)
	if o.cfg.RiverUI != nil {
		routes = append(routes,
			Route{Pattern: "/riverui/", Auth: AuthUI, SameOrigin: true, MaxBody: maxUIBody, Timeout: t, Handler: o.cfg.RiverUI},
			Route{Pattern: "GET /riverui", Auth: AuthPublic, Timeout: t, Handler: http.RedirectHandler("/riverui/", http.StatusMovedPermanently)},
		)
	}
	if len(o.cfg.APIRoutes) > 0 || o.cfg.API != nil {
		routes = append(routes, o.reportRoutes()...) // server/reports.go: /v1/reports/{name}, /dashboard/
	}
	return append(routes, o.cfg.APIRoutes...)
}

// Handler returns the whole HTTP front: every route of Routes behind its
// rules, and the request id and access log in front of all.
func (o *Ops) Handler() http.Handler {
	mux := http.NewServeMux()
	g := &routeGuards{auth: o.auth}
	for _, rt := range o.Routes() {
		g.register(mux, rt)
	}
	if o.cfg.API != nil {
		mux.Handle("/", o.cfg.API)
	}
	return withRequestID(o.cfg.Logger, mux)
}

// healthz answers while the process is up, whatever its dependencies do.
func (o *Ops) healthz(w http.ResponseWriter, _ *http.Request) {
	body := map[string]any{"status": "ok"}
	if rs := o.cfg.Rules.Load(); rs != nil {
		body["rules_version"] = rs.Version
	}
	writeJSON(w, http.StatusOK, body)
}

// readiness is the body of /readyz.
type readiness struct {
	Status       string            `json:"status"` // ready or unready
	RulesVersion string            `json:"rules_version,omitempty"`
	Checks       map[string]string `json:"checks"` // check → ok or what is wrong
	// RulesReload is the last rules reload's rejection, if it was rejected.
	RulesReload *reloadError `json:"rules_reload,omitempty"`
}

// reloadError is a rejected rules reload in /readyz.
type reloadError struct {
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// readyz answers 200 when this process can do its work: Postgres answers
// within ReadyTimeout, the schema is current and a rule set is loaded;
// otherwise 503 naming the failed checks. Details are logged, not shown,
// since the endpoint is public; except a rejected rules reload, which
// leaves the process ready on its last good rule set and is shown with its
// errors (positions and messages about the rules file), so that whoever
// edited the file sees why it is not in force.
func (o *Ops) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), o.cfg.ReadyTimeout)
	defer cancel()
	res := readiness{Status: "ready", Checks: map[string]string{}}
	fail := func(check, msg string, err error) {
		res.Status, res.Checks[check] = "unready", msg
		if err != nil {
			o.cfg.Logger.WarnContext(ctx, "server: not ready", slog.String("check", check), slog.String("error", err.Error()))
		}
	}
	if err := o.cfg.Pool.Ping(ctx); err != nil {
		fail("database", "unreachable", err)
		fail("migrations", "not checked", nil)
	} else {
		res.Checks["database"] = "ok"
		st, err := migrations.Check(ctx, o.cfg.Pool)
		switch {
		case err != nil:
			fail("migrations", "could not be checked", err)
		case !st.Current():
			fail("migrations", "schema is behind: run `ciclo migrate`", nil)
		default:
			res.Checks["migrations"] = "ok"
		}
	}
	if o.cfg.SMTP != nil {
		o.checkSMTP(ctx, &res, fail)
	}
	if rs := o.cfg.Rules.Load(); rs == nil {
		fail("rules", "no rule set loaded", nil)
	} else {
		res.Checks["rules"] = "ok"
		res.RulesVersion = rs.Version
		if o.cfg.RulesReloadError != nil {
			if msg, at := o.cfg.RulesReloadError(); msg != "" {
				res.Checks["rules"] = "ok, but the last reload was rejected: the previous rule set keeps running"
				res.RulesReload = &reloadError{Error: msg, At: at.UTC()}
			}
		}
	}
	status := http.StatusOK
	if res.Status != "ready" {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, res)
}

// checkSMTP adds the SMTP check to res: what is wrong and how to fix it,
// without the server's address.
func (o *Ops) checkSMTP(ctx context.Context, res *readiness, fail func(check, msg string, err error)) {
	err := o.cfg.SMTP(ctx)
	if err == nil {
		res.Checks["smtp"] = "ok"
		return
	}
	msg := "SMTP server check failed"
	var p interface{ Public() string }
	if errors.As(err, &p) {
		msg = p.Public()
	}
	if o.cfg.API == nil && len(o.cfg.APIRoutes) == 0 {
		fail("smtp", msg, err)
		return
	}
	res.Checks["smtp"] = msg
	o.cfg.Logger.WarnContext(ctx, "server: SMTP check failed", slog.String("error", err.Error()))
}
