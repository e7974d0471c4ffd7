package server

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/migrations"
	"github.com/ciclohq/ciclo/worker"
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
	Rules *worker.RuleSetHolder
	// APIToken is the bearer token of the API; it also opens /metrics and
	// /riverui/. Required.
	APIToken string
	// MetricsToken, optional, is a bearer token that opens /metrics only, for
	// a scraper that should not be able to post events.
	MetricsToken string
	// UIUser and UIPassword, optional, open /riverui/ with HTTP basic auth
	// (for browsers, which cannot send a bearer token).
	UIUser, UIPassword string
	// Metrics is served at /metrics. Nil: /metrics answers 404.
	Metrics *metrics.Metrics
	// RiverUI, optional, is served under /riverui/.
	RiverUI http.Handler
	// API, optional, serves every other path (the events API, unsubscribe
	// pages). Nil in a worker-only process: other paths answer 404.
	API http.Handler
	// ReadyTimeout bounds /readyz's database checks. Default ReadyTimeoutDefault.
	ReadyTimeout time.Duration
	// Logger, default slog.Default().
	Logger *slog.Logger
}

// Ops serves the operational endpoints in front of the API.
type Ops struct {
	cfg OpsConfig
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
	return &Ops{cfg: c}
}

// Handler returns the whole HTTP front. /healthz and /readyz need no
// authentication (load balancers and orchestrators probe them); /metrics
// needs the metrics or the API token; /riverui/ the API token or the UI
// user's basic auth; the rest is the API's, with its own authentication.
func (o *Ops) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", o.healthz)
	mux.HandleFunc("GET /readyz", o.readyz)
	mux.Handle("GET /metrics", o.requireBearer(o.cfg.Metrics.Handler(), o.cfg.MetricsToken, o.cfg.APIToken))
	if o.cfg.RiverUI != nil {
		mux.Handle("/riverui/", o.requireUIAuth(o.cfg.RiverUI))
		mux.Handle("GET /riverui", http.RedirectHandler("/riverui/", http.StatusMovedPermanently))
	}
	if o.cfg.API != nil {
		o.reportRoutes(mux) // server/reports.go: /v1/reports/{name}, /dashboard/
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
}

// readyz answers 200 when this process can do its work: Postgres answers
// within ReadyTimeout, the schema is current and a rule set is loaded;
// otherwise 503 naming the failed checks. Details are logged, not shown,
// since the endpoint is public.
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
	if rs := o.cfg.Rules.Load(); rs == nil {
		fail("rules", "no rule set loaded", nil)
	} else {
		res.Checks["rules"] = "ok"
		res.RulesVersion = rs.Version
	}
	status := http.StatusOK
	if res.Status != "ready" {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, res)
}

// requireBearer lets a request through with one of the non-empty tokens.
func (o *Ops) requireBearer(next http.Handler, tokens ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && anyEqual(got, tokens...) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="ciclo"`)
		writeError(w, http.StatusUnauthorized, "", "missing or wrong bearer token: send `Authorization: Bearer $CICLO_METRICS_TOKEN` (or the API token)")
	})
}

// requireUIAuth lets a request through with the API token as a bearer
// token, or with the UI user's basic auth when one is configured.
func (o *Ops) requireUIAuth(next http.Handler) http.Handler {
	basic := o.cfg.UIUser != "" && o.cfg.UIPassword != ""
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && anyEqual(got, o.cfg.APIToken) {
			next.ServeHTTP(w, r)
			return
		}
		if user, pass, ok := r.BasicAuth(); ok && basic {
			// Compare both, always, so timing does not tell which was wrong.
			userOK := subtle.ConstantTimeCompare([]byte(user), []byte(o.cfg.UIUser))
			passOK := subtle.ConstantTimeCompare([]byte(pass), []byte(o.cfg.UIPassword))
			if userOK&passOK == 1 {
				next.ServeHTTP(w, r)
				return
			}
		}
		if basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="ciclo River UI", charset="UTF-8"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ciclo"`)
		}
		http.Error(w, "River UI: log in as CICLO_UI_USER, or send `Authorization: Bearer $CICLO_API_TOKEN`", http.StatusUnauthorized)
	})
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
