// Package server is ciclo's HTTP API: event ingestion, unsubscribe links and
// health. It chooses every HTTP status code; the packages below it return
// plain errors.
package server

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ciclohq/ciclo/ingest"
	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/unsubscribe"
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
	Rules *rules.Holder
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
	// RequestTimeout is the deadline of every API request: one stuck behind
	// a database lock is cancelled and answered 503. Default RequestTimeoutDefault.
	RequestTimeout time.Duration
	// ShopifySecrets verify POST /v1/integrations/shopify (the app's client
	// secret; two during a rotation). None: every delivery is refused.
	ShopifySecrets []string
	// ShopifyMaxAge is how old a Shopify delivery of an unknown event may
	// be. Default ShopifyMaxAgeDefault.
	ShopifyMaxAge time.Duration
	// WooCommerceSecrets verify POST /v1/integrations/woocommerce. None:
	// every delivery but the ping is refused.
	WooCommerceSecrets []string
}

// Server serves ciclo's HTTP API.
type Server struct {
	cfg    Config
	ingest *ingest.Service
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
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = RequestTimeoutDefault
	}
	if len(c.OrderEvents) == 0 {
		c.OrderEvents = []string{"order_placed"}
	}
	if c.ShopifyMaxAge <= 0 {
		c.ShopifyMaxAge = ShopifyMaxAgeDefault
	}
	s := &Server{cfg: c, ingest: ingest.NewService(&ingest.Config{
		Pool: c.Pool, Rules: c.Rules.Load, OrderEvents: c.OrderEvents, Now: c.Now,
	})}
	return s
}

// Routes returns the API's route table: the events and suppressions API
// need the bearer token, the unsubscribe pages are public.
func (s *Server) Routes() []Route {
	t := s.cfg.RequestTimeout
	return []Route{
		{Pattern: "POST /v1/events", Auth: AuthToken, MaxBody: s.cfg.MaxBodyBytes, TooLarge: "split the batch", Timeout: t, Handler: http.HandlerFunc(s.postEvents)},
		{Pattern: "POST /v1/suppressions", Auth: AuthToken, MaxBody: maxSuppressionBody, Timeout: t, Handler: http.HandlerFunc(s.postSuppression)},
		{Pattern: "GET /v1/suppressions/{email}", Auth: AuthToken, Timeout: t, Handler: http.HandlerFunc(s.getSuppression)},
		{Pattern: "DELETE /v1/suppressions/{email}", Auth: AuthToken, Timeout: t, Handler: http.HandlerFunc(s.deleteSuppression)},
		{Pattern: "POST /v1/rules/{name}/run", Auth: AuthToken, Timeout: t, Handler: http.HandlerFunc(s.postRuleRun)},
		{Pattern: "GET /v1/customers/{id}/points", Auth: AuthToken, Timeout: t, Handler: http.HandlerFunc(s.getPoints)},
		{Pattern: "POST /v1/customers/{id}/points/redeem", Auth: AuthToken, MaxBody: maxPointsBody, Timeout: t, Handler: http.HandlerFunc(s.redeemPoints)},
		{Pattern: "POST /v1/customers/{id}/points/adjust", Auth: AuthToken, MaxBody: maxPointsBody, Timeout: t, Handler: http.HandlerFunc(s.adjustPoints)},
		{Pattern: "GET /unsubscribe/{token}", Auth: AuthPublic, Timeout: t, Handler: http.HandlerFunc(s.unsubscribePage)},
		{Pattern: "GET /v1/customers/{id}", Auth: AuthToken, Timeout: t, Handler: http.HandlerFunc(s.getCustomer)},
		{Pattern: "GET /v1/customers/{id}/coupons", Auth: AuthToken, Timeout: t, Handler: http.HandlerFunc(s.getCustomerCoupons)},
		{Pattern: "DELETE /v1/customers/{id}", Auth: AuthToken, Timeout: t, Handler: http.HandlerFunc(s.deleteCustomer)},
		{Pattern: "POST /v1/integrations/shopify", Auth: AuthSignature, Verify: s.verifyShopify, MaxBody: s.cfg.MaxBodyBytes, Timeout: t, Handler: http.HandlerFunc(s.postShopify)},
		{Pattern: "POST /v1/integrations/woocommerce", Auth: AuthSignature, Verify: s.verifyWooCommerce, MaxBody: s.cfg.MaxBodyBytes, Timeout: t, Handler: http.HandlerFunc(s.postWooCommerce)},
		{Pattern: "POST /unsubscribe/{token}", Auth: AuthPublic, MaxBody: maxFormBody, Timeout: t, Handler: http.HandlerFunc(s.unsubscribe)},
	}
}

// Handler returns the API's routes, for running the API on its own;
// ciclo's process serves Routes through Ops (which also has /healthz).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	g := &routeGuards{auth: newAuthenticator(authConfig{apiToken: s.cfg.Token})}
	for _, rt := range s.Routes() {
		g.register(mux, rt)
	}
	return mux
}

// apiError is the body of every error response.
type apiError struct {
	Error struct {
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
		// RequestID, on 5xx answers, finds the logged detail.
		RequestID string `json:"request_id,omitempty"`
	} `json:"error"`
}

// writeError answers an error. A 5xx answer carries only msg's text before
// its first ": " — the advice, never the wrapped error, whose text can name
// the database's user, host and SQLSTATE — and the request id under which
// the caller logged the detail.
func writeError(w http.ResponseWriter, status int, field, msg string) {
	var e apiError
	e.Error.Message, e.Error.Field = msg, field
	if status >= 500 {
		e.Error.Message, _, _ = strings.Cut(msg, ": ")
		e.Error.RequestID = w.Header().Get(RequestIDHeader)
	}
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
