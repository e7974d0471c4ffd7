// Package app wires ciclo's parts into one running process: the database
// pool, migrations, the rule set, channels, the River client and the HTTP
// server. cmd/ciclo builds its commands on it, and end-to-end tests run it.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/internal/metrics"
	"github.com/ciclohq/ciclo/migrations"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/server"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/templates"
	"github.com/ciclohq/ciclo/unsubscribe"
	"github.com/ciclohq/ciclo/worker"
)

// Defaults for Config.
const (
	AddrDefault      = ":8080"
	OutboxDirDefault = "outbox"
	FromDefault      = "ciclo <ciclo@localhost>"
	// ShutdownTimeoutDefault is how long in-flight jobs and requests get to
	// finish on shutdown before they are cancelled.
	ShutdownTimeoutDefault = 30 * time.Second
)

// unsubscribeSecretSetting names the generated unsubscribe secret in the
// settings table.
const unsubscribeSecretSetting = "unsubscribe_secret"

// randomSecret returns 32 random bytes, hex encoded.
func randomSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("app: random secret: %v", err))
	}
	return hex.EncodeToString(b)
}

// Config is everything a ciclo process is configured with.
type Config struct {
	// DatabaseURL is the Postgres connection URL. Required.
	DatabaseURL string
	// RulesPath is the rules file. Required.
	RulesPath string
	// APIToken is the bearer token the HTTP API requires. Required.
	APIToken string
	// Secret signs unsubscribe links. Default: a random secret generated on
	// first start and kept in the database (settings table), so links stay
	// valid across restarts, token rotations and processes.
	Secret string
	// Addr is the HTTP listen address. Default AddrDefault.
	Addr string
	// Listener, optional, is an already bound listener Start serves on
	// instead of listening on Addr (Addr becomes its address), so that the
	// default PublicURL carries the real port when Addr's port is 0.
	Listener net.Listener
	// PublicURL is how recipients reach this server, for unsubscribe links.
	// Default: http://localhost plus the port of Listener, else of Addr.
	PublicURL string
	// SMTPURL is the SMTP server (smtp://user:pass@host:port?tls=...). Empty:
	// emails are written to OutboxDir instead.
	SMTPURL string
	// OutboxDir receives .eml files when SMTPURL is empty. Default OutboxDirDefault.
	OutboxDir string
	// From is the sender of every email. Default FromDefault.
	From string
	// UnsubscribeMailto, optional, adds a mailto: entry to List-Unsubscribe.
	UnsubscribeMailto string
	// WebhookSecret signs webhooks whose rule has no secret of its own.
	WebhookSecret string
	// WebhookAllowHosts are webhook targets allowed even on private or
	// loopback addresses (host or host:port).
	WebhookAllowHosts []string
	// WebhookAllowPrivate allows every private and loopback target.
	WebhookAllowPrivate bool
	// Migrate applies pending migrations at start. When false, a schema that
	// is behind stops the start with an error naming `ciclo migrate`.
	Migrate bool
	// ShutdownTimeout bounds a graceful stop. Default ShutdownTimeoutDefault.
	ShutdownTimeout time.Duration
	// Logger, default slog.Default().
	Logger *slog.Logger
	// Now is the clock, default time.Now.
	Now func() time.Time
	// Role is what this process runs: RoleAll (default), RoleAPI or RoleWorker.
	Role string
	// MetricsToken, optional, is a bearer token that opens /metrics only
	// (the API token opens it too).
	MetricsToken string
	// UIUser and UIPassword, optional, open the River UI at /riverui/ with
	// HTTP basic auth (the API token as bearer token opens it too).
	UIUser, UIPassword string
	// Metrics receives the process's metrics. Default: a new set, served at /metrics.
	Metrics *metrics.Metrics
	// NoWatchRules turns off reloading the rules file when it changes on
	// disk; Reload and ReloadOn (SIGHUP in serve) still work. Default: watch.
	NoWatchRules bool
	// ReloadDebounce is how long after the last change to the rules file
	// the watcher reloads it. Default ReloadDebounceDefault.
	ReloadDebounce time.Duration
	// ReloadSettle is how long the rules file must have gone unchanged
	// (by its modification time) before the watcher reloads it, so that a
	// file written in several steps is loaded only once complete. Default
	// ReloadSettleDefault.
	ReloadSettle time.Duration
	// HTTP are the HTTP server's timeouts and connection cap; zero fields
	// take the server package's defaults.
	HTTP server.HTTPConfig
	// ShopifySecrets verify Shopify webhooks (CICLO_SHOPIFY_SECRET, split
	// at commas); none: they are refused.
	ShopifySecrets []string
	// ShopifyMaxAge bounds the age of a Shopify delivery of an unknown
	// event. Default server.ShopifyMaxAgeDefault.
	ShopifyMaxAge time.Duration
	// WooCommerceSecrets verify WooCommerce webhooks (CICLO_WOOCOMMERCE_SECRET).
	WooCommerceSecrets []string
	// Worker tunes the River client (workers per queue, retry policy…);
	// Rules, Dispatch, Logger and Now are filled in by the app.
	Worker worker.Config
}

// App is a running ciclo process.
type App struct {
	cfg   Config
	Pool  *pgxpool.Pool
	Rules *rules.Holder
	River *river.Client[pgx.Tx]
	// Sweeps registers the scheduled rules' periodic sweeps; a rules reload
	// calls Sweeps.Sync with the new set. Nil in an insert-only process.
	Sweeps    *worker.PeriodicSweeps
	Server    *server.Server
	Templates *templates.Set
	Metrics   *metrics.Metrics
	email     channels.Channel
	smtpCheck *smtpCheck // nil without an SMTP server
	webhook   channels.Channel
	http      *http.Server
	listener  net.Listener
	handler   http.Handler
	ops       *server.Ops
	riverUI   *riverui.Handler
	stopUI    context.CancelFunc
	reload    reloader
}

// readRulesFile reads a rules file, or its first rules.MaxFileBytes+1
// bytes: enough for Parse to refuse a file over the limit without reading
// a file of any size into memory.
func readRulesFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("rules file %q not found: %w", path, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("read rules file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, rules.MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read rules file %q: %w", path, err)
	}
	return data, nil
}

// LoadRules reads, parses and checks a rules file against the templates it
// names. Errors are *rules.LoadErrors or say what could not be read.
func LoadRules(path string) (*rules.RuleSet, *templates.Set, error) {
	data, err := readRulesFile(path)
	if err != nil {
		return nil, nil, err
	}
	// A first pass without template checks finds templates_dir.
	rs, err := rules.Parse(path, data, rules.ParseOptions{LookupEnv: os.LookupEnv})
	if err != nil {
		return nil, nil, withTemplateNameErrors(path, data, err)
	}
	dir := rs.TemplateDir
	if dir != "" && !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(path), dir)
	}
	tset, err := templates.New(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load templates: %w", err)
	}
	rs, err = rules.Parse(path, data, rules.ParseOptions{LookupEnv: os.LookupEnv, Templates: tset.Names()})
	if err != nil {
		return nil, nil, err
	}
	if err := checkTemplates(path, rs, tset); err != nil {
		return nil, nil, err
	}
	return rs, tset, nil
}

// New connects, migrates (or checks the schema), loads the rules and builds
// the channels, River client and HTTP server. Nothing runs until Start.
func New(ctx context.Context, cfg Config) (*App, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	a := &App{cfg: cfg}
	rs, tset, err := LoadRules(cfg.RulesPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: pass --rules FILE or set CICLO_RULES (rules.example.yaml is a complete example)", err)
	}
	if err != nil {
		return nil, err
	}
	a.Rules, a.Templates = rules.NewHolder(rs), tset

	a.Pool, err = newPool(ctx, &cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if err := a.Pool.Ping(ctx); err != nil {
		a.Pool.Close()
		return nil, fmt.Errorf("connect to database: %w (check DATABASE_URL)", err)
	}
	if err := a.schema(ctx); err != nil {
		a.Pool.Close()
		return nil, err
	}
	if a.cfg.Secret == "" {
		if a.cfg.Secret, err = store.New(a.Pool).EnsureSetting(ctx, unsubscribeSecretSetting, randomSecret()); err != nil {
			a.Pool.Close()
			return nil, err
		}
	}
	if err := a.build(); err != nil {
		a.Pool.Close()
		return nil, err
	}
	return a, nil
}

// poolHeadroom is the connections a process needs beside its evaluate and
// sweep workers: River's listener, fetches and maintenance, dispatch jobs'
// short queries, HTTP requests. A process that dispatches needs
// worker.GuardedSendsMax more: a send in flight holds one in its guard
// against erasure.
const poolHeadroom = 10

// newPool connects with the pool size from DATABASE_URL's pool_max_conns,
// or, when it names none, one sized for this process's workers: pgx's own
// default, max(4, CPUs), starves a worker.
func newPool(ctx context.Context, cfg *Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if !strings.Contains(cfg.DatabaseURL, "pool_max_conns") {
		w := cfg.Worker
		n := int32(poolHeadroom + worker.GuardedSendsMax + max(w.EvaluateWorkers, worker.EvaluateWorkersDefault) + max(w.SweepWorkers, worker.SweepWorkersDefault))
		if cfg.Role == RoleAPI {
			n = 2 * poolHeadroom
		}
		pc.MaxConns = n
	}
	return pgxpool.NewWithConfig(ctx, pc)
}

func (c *Config) fill() error {
	switch {
	case c.DatabaseURL == "":
		return errors.New("no database: set DATABASE_URL")
	case c.RulesPath == "":
		return errors.New("no rules file: set CICLO_RULES or --rules")
	case c.APIToken == "":
		return errors.New("no API token: set CICLO_API_TOKEN")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Addr == "" {
		c.Addr = AddrDefault
	}
	if c.Listener != nil {
		c.Addr = c.Listener.Addr().String()
	}
	if c.PublicURL == "" {
		_, port, _ := net.SplitHostPort(c.Addr)
		c.PublicURL = "http://localhost:" + port
	}
	if c.OutboxDir == "" {
		c.OutboxDir = OutboxDirDefault
	}
	if c.From == "" {
		c.From = FromDefault
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = ShutdownTimeoutDefault
	}
	c.HTTP = c.HTTP.WithDefaults()
	if c.ReloadDebounce == 0 {
		c.ReloadDebounce = ReloadDebounceDefault
	}
	if c.ReloadSettle == 0 {
		c.ReloadSettle = ReloadSettleDefault
	}
	return c.fillOps()
}

// schema applies migrations, or with Migrate off refuses a schema behind.
func (a *App) schema(ctx context.Context) error {
	if a.cfg.Migrate {
		return migrations.Up(ctx, a.Pool, a.cfg.Logger)
	}
	st, err := migrations.Check(ctx, a.Pool)
	if err != nil {
		return err
	}
	if !st.Current() {
		return fmt.Errorf("database schema is behind (ciclo %d of %d, river %d of %d): run `ciclo migrate`",
			st.CicloCurrent, st.CicloTarget, st.RiverCurrent, st.RiverTarget)
	}
	return nil
}

func (a *App) build() error {
	var err error
	if a.Metrics = a.cfg.Metrics; a.Metrics == nil {
		a.Metrics = a.newMetrics()
	}
	a.Metrics.Known(metricLabels(a.Rules.Load())) // every series from the first scrape
	if !a.cfg.runsWorkers() {
		// An API process only enqueues; it sends nothing.
	} else if a.cfg.SMTPURL != "" {
		smtp, err := channels.NewSMTP(&channels.SMTPConfig{URL: a.cfg.SMTPURL})
		if err != nil {
			return fmt.Errorf("email channel: %w", err)
		}
		a.email, a.smtpCheck = smtp, &smtpCheck{smtp: smtp, from: a.cfg.From, now: time.Now}
	} else {
		a.email, err = channels.NewOutbox(a.cfg.OutboxDir)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		a.cfg.Logger.Info("app: no SMTP server configured (CICLO_SMTP_URL); emails are written as .eml files",
			slog.String("outbox_dir", a.cfg.OutboxDir))
	}
	if a.cfg.runsWorkers() {
		a.webhook = channels.NewWebhook(&channels.WebhookConfig{
			AllowPrivate: a.cfg.WebhookAllowPrivate, AllowedHosts: a.cfg.WebhookAllowHosts, Now: a.cfg.Now,
		})
	}
	signer := unsubscribe.NewSigner(a.cfg.Secret, a.cfg.PublicURL)

	wc := a.cfg.Worker
	wc.Rules, wc.Logger, wc.Now, wc.Metrics = a.Rules, a.cfg.Logger, a.cfg.Now, a.Metrics
	wc.InsertOnly = !a.cfg.runsWorkers()
	wc.Dispatch = &worker.DispatchConfig{
		Email: a.email, Webhook: a.webhook, Templates: a.Templates, Unsubscribe: signer,
		From: a.cfg.From, UnsubscribeMailto: a.cfg.UnsubscribeMailto, WebhookSecret: a.cfg.WebhookSecret,
	}
	a.River, err = worker.NewClient(a.Pool, &wc)
	if err != nil {
		return err
	}
	if !wc.InsertOnly {
		a.Sweeps = worker.NewPeriodicSweeps(a.River, a.Rules)
		if _, _, err := a.Sweeps.Sync(a.Rules.Load()); err != nil {
			return err
		}
		a.OnReload(a.syncSweeps)
	}
	a.Server = server.New(&server.Config{
		Pool: a.Pool, River: a.River, Rules: a.Rules, Token: a.cfg.APIToken, Unsubscribe: signer,
		Logger: a.cfg.Logger, Now: a.cfg.Now, Metrics: a.Metrics, RequestTimeout: a.cfg.HTTP.RequestTimeout,
		ShopifySecrets: a.cfg.ShopifySecrets, ShopifyMaxAge: a.cfg.ShopifyMaxAge, WooCommerceSecrets: a.cfg.WooCommerceSecrets,
	})
	return a.buildOps()
}

// Start begins working jobs and serving HTTP. It returns once both run.
func (a *App) Start(ctx context.Context) error {
	a.probeSMTP(ctx)
	if a.cfg.runsWorkers() {
		if err := a.River.Start(ctx); err != nil {
			return fmt.Errorf("start job queue: %w", err)
		}
	}
	if err := a.startOps(); err != nil {
		return err
	}
	ln := a.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", a.cfg.Addr); err != nil {
			return fmt.Errorf("listen on %s: %w (set CICLO_ADDR)", a.cfg.Addr, err)
		}
	}
	a.listener = ln
	if err := a.startWatch(ctx); err != nil {
		_ = ln.Close()
		return err
	}
	a.http = server.NewHTTPServer(a.handler, &a.cfg.HTTP, a.cfg.Logger)
	ln = server.LimitListener(ln, a.cfg.HTTP.MaxConnections)
	go func() {
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.cfg.Logger.Error("app: http server stopped", slog.String("error", err.Error()))
		}
	}()
	a.cfg.Logger.Info("app: ciclo is running", slog.String("addr", ln.Addr().String()), slog.String("role", a.cfg.Role),
		slog.Int("pool_max_conns", int(a.Pool.Config().MaxConns)),
		slog.String("rules", a.cfg.RulesPath), slog.String("rules_version", a.Rules.Load().Version),
		slog.Int("num_rules", len(a.Rules.Load().Rules)))
	return nil
}

// Addr is the address the HTTP server listens on, once started.
func (a *App) Addr() string { return a.listener.Addr().String() }

// Stop shuts down gracefully: stop accepting requests, stop fetching jobs,
// let in-flight ones finish within ShutdownTimeout, then cancel them.
func (a *App) Stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ShutdownTimeout)
	defer cancel()
	errs := []error{a.stopWatch()}
	if a.http != nil {
		errs = append(errs, a.http.Shutdown(ctx))
	}
	a.stopOps()
	if !a.cfg.runsWorkers() {
		// An insert-only client was never started.
	} else if err := a.River.Stop(ctx); err != nil {
		a.cfg.Logger.Warn("app: jobs did not finish in time; cancelling", slog.String("error", err.Error()))
		hardCtx, hardCancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, a.River.StopAndCancel(hardCtx))
		hardCancel()
	}
	if a.cfg.runsWorkers() {
		errs = append(errs, a.email.Close(), a.webhook.Close())
	}
	a.Pool.Close()
	return errors.Join(errs...)
}
