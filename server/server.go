// Package server is ciclo's HTTP API: event ingestion, unsubscribe links and
// health. It chooses every HTTP status code; the packages below it return
// plain errors.
package server

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/unsubscribe"
	"github.com/ciclohq/ciclo/worker"
)

// Defaults for Config.
const (
	// MaxBodyBytesDefault caps a request body: 1 MiB.
	MaxBodyBytesDefault = 1 << 20
	// MaxBatchDefault caps the events in one batch request.
	MaxBatchDefault = 1000
)

// Config configures the HTTP server.
type Config struct {
	// Pool is the database. Required.
	Pool *pgxpool.Pool
	// River enqueues evaluate jobs in the ingest transaction. Required.
	River *river.Client[pgx.Tx]
	// Rules holds the rule set in force (for the initial stage and version). Required.
	Rules *worker.RuleSetHolder
	// Token is the bearer token the API requires. Required.
	Token string
	// Unsubscribe verifies unsubscribe links. Required.
	Unsubscribe *unsubscribe.Signer
	// Logger, default slog.Default().
	Logger *slog.Logger
	// Now is the clock, default time.Now.
	Now func() time.Time
	// MaxBodyBytes caps a request body. Default MaxBodyBytesDefault.
	MaxBodyBytes int64
	// MaxBatch caps the events in one request. Default MaxBatchDefault.
	MaxBatch int
	// Metrics, optional, counts ingested events. Nil: none.
	Metrics *metrics.Metrics
	// OrderEvents are the event types that count as orders (orders_count,
	// first/last order, total_spent from properties.total). Default: order_placed.
	OrderEvents []string
}

// Server serves ciclo's HTTP API.
type Server struct {
	cfg         Config
	orderEvents map[string]bool
}

// New returns a Server. It panics when a required field is missing: that
// is a programmer error, configuration is validated before.
func New(cfg *Config) *Server {
	c := *cfg
	if c.Pool == nil || c.River == nil || c.Rules == nil || c.Token == "" || c.Unsubscribe == nil {
		panic("server: Pool, River, Rules, Token and Unsubscribe are required")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = MaxBodyBytesDefault
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = MaxBatchDefault
	}
	if len(c.OrderEvents) == 0 {
		c.OrderEvents = []string{"order_placed"}
	}
	s := &Server{cfg: c, orderEvents: map[string]bool{}}
	for _, t := range c.OrderEvents {
		s.orderEvents[t] = true
	}
	return s
}

// Handler returns the routes. The unsubscribe pages are public; the API
// needs the bearer token. /healthz is the Ops front's (Ops.Handler).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/events", s.requireToken(http.HandlerFunc(s.postEvents)))
	mux.HandleFunc("GET /unsubscribe/{token}", s.unsubscribePage)
	mux.HandleFunc("POST /unsubscribe/{token}", s.unsubscribe)
	s.suppressionRoutes(mux)
	return mux
}

// requireToken rejects requests without the API bearer token.
func (s *Server) requireToken(next http.Handler) http.Handler {
	want := []byte(s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
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

// apiError is the body of every error response.
type apiError struct {
	Error struct {
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, field, msg string) {
	var e apiError
	e.Error.Message, e.Error.Field = msg, field
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// inputError is a client mistake in a request body.
type inputError struct {
	field, msg string
}

func (e *inputError) Error() string { return e.msg }

func asInputError(err error) (*inputError, bool) {
	var ie *inputError
	ok := errors.As(err, &ie)
	return ie, ok
}
