// Configuration of serve and demo (and migrate's database settings).
//
// Every setting is declared once, in (*flags).settings or (*dbFlags).settings
// below: one setting{Key, Env, Value, Usage} line gives the flag --Key, the
// environment variable Env and the config-file key Key, parsed alike, with
// the precedence flags > environment > config file > default (koanf does the
// layering, see settings.go). Value names where the value lands and its
// default: text(&s, ""), integer(&n, 4), duration(&d, time.Minute),
// boolean(&b, false) (takes 1/0, true/false, yes/no, on/off) or list(&l, nil)
// (comma-separated, a YAML list in the file).
//
// To add a setting, add one line to (*flags).settings that points at the
// app.Config field it fills, e.g.
//
//	{Key: "shopify-secret", Env: "CICLO_SHOPIFY_SECRET", Value: text(&c.ShopifySecret, ""),
//		Usage: "verifies Shopify webhook signatures"},
//
// and a row to the README's configuration table (TestConfigREADME fails
// until it is there). Nothing else: --help, the environment variable, the
// config-file key, the did-you-mean for a mistyped key and the error naming
// a bad value's source all follow from that line. A setting that does not
// go straight into app.Config points at a field of flags and is copied in
// (*flags).config, as no-migrate is. Checks across settings go in
// (*flags).validate, naming the value and its origin with f.conf.describe.

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/integrations/hmacsig"
	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/localpg"
	"github.com/ciclohq/ciclo/server"
	"github.com/ciclohq/ciclo/worker"
)

// flags are the settings shared by serve and demo.
type flags struct {
	cfg       app.Config // where most settings land
	noMigrate bool
	// shopifySecret and wooCommerceSecret are comma-separated lists (a
	// rotated secret and its successor), split into the app's config.
	shopifySecret, wooCommerceSecret string
	configFile                       string
	db                               dbFlags
	conf                             *settingSet
}

// env is an environment variable or def, for the commands whose few
// flags are not settings (rules test, templates preview).
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// settings are serve's and demo's settings.
func (f *flags) settings() []setting {
	c := &f.cfg
	w, h := &c.Worker, &c.HTTP
	return append(f.db.settings(), []setting{
		{Key: "rules", Env: "CICLO_RULES", Value: text(&c.RulesPath, "rules.yaml"), Usage: "rules file"},
		{Key: "api-token", Env: "CICLO_API_TOKEN", Value: text(&c.APIToken, ""), Usage: "bearer token the HTTP API requires; empty: a random one, printed at start"},
		{Key: "smtp-url", Env: "CICLO_SMTP_URL", Value: text(&c.SMTPURL, ""), Usage: "SMTP server, smtp://user:pass@host:port?tls=none|starttls|tls; empty: write emails to the outbox"},
		{Key: "outbox-dir", Env: "CICLO_OUTBOX_DIR", Value: text(&c.OutboxDir, app.OutboxDirDefault), Usage: "folder for .eml files when no SMTP server is set"},
		{Key: "addr", Env: "CICLO_ADDR", Value: text(&c.Addr, app.AddrDefault), Usage: "HTTP listen address"},
		{Key: "public-url", Env: "CICLO_PUBLIC_URL", Value: text(&c.PublicURL, ""), Usage: "URL recipients reach this server at, for unsubscribe links; default http://localhost:PORT"},
		{Key: "from", Env: "CICLO_FROM", Value: text(&c.From, app.FromDefault), Usage: "sender of every email"},
		{Key: "secret", Env: "CICLO_SECRET", Value: text(&c.Secret, ""), Usage: "secret that signs unsubscribe links; default: generated once and kept in the database"},
		{Key: "webhook-secret", Env: "CICLO_WEBHOOK_SECRET", Value: text(&c.WebhookSecret, ""), Usage: "signs webhooks whose rule sets no secret"},
		{Key: "unsubscribe-mailto", Env: "CICLO_UNSUBSCRIBE_MAILTO", Value: text(&c.UnsubscribeMailto, ""), Usage: "address for the mailto: entry of List-Unsubscribe"},
		{Key: "webhook-allow-host", Env: "CICLO_WEBHOOK_ALLOW_HOSTS", Value: list(&c.WebhookAllowHosts, nil), Usage: "webhook hosts allowed even on private addresses, comma-separated"},
		{Key: "webhook-allow-private", Env: "CICLO_WEBHOOK_ALLOW_PRIVATE", Value: boolean(&c.WebhookAllowPrivate, false), Usage: "allow webhooks to private and loopback addresses"},
		{Key: "no-migrate", Env: "CICLO_NO_MIGRATE", Value: boolean(&f.noMigrate, false), Usage: "do not apply migrations at start; refuse to start if the schema is behind"},
		{Key: "shopify-secret", Env: "CICLO_SHOPIFY_SECRET", Value: text(&f.shopifySecret, ""), Usage: "Shopify app client secret that verifies POST /v1/integrations/shopify; comma-separated during a rotation"},
		{Key: "shopify-max-age", Env: "CICLO_SHOPIFY_MAX_AGE", Value: duration(&c.ShopifyMaxAge, server.ShopifyMaxAgeDefault), Usage: "oldest X-Shopify-Triggered-At accepted for an event ciclo has not seen"},
		{Key: "woocommerce-secret", Env: "CICLO_WOOCOMMERCE_SECRET", Value: text(&f.wooCommerceSecret, ""), Usage: "WooCommerce webhook secret that verifies POST /v1/integrations/woocommerce; comma-separated during a rotation"},
		{Key: "role", Env: "CICLO_ROLE", Value: text(&c.Role, app.RoleAll), Usage: "what this process runs: api (HTTP API and River UI, only enqueues jobs), worker (works jobs; HTTP serves only /healthz, /readyz, /metrics) or all"},
		{Key: "metrics-token", Env: "CICLO_METRICS_TOKEN", Value: text(&c.MetricsToken, ""), Usage: "bearer token that opens /metrics only, for a scraper; the API token opens it too"},
		{Key: "ui-user", Env: "CICLO_UI_USER", Value: text(&c.UIUser, ""), Usage: "user for HTTP basic auth to the River UI at /riverui/; the API token as bearer token opens it too"},
		{Key: "ui-password", Env: "CICLO_UI_PASSWORD", Value: text(&c.UIPassword, ""), Usage: "password for the River UI user"},
		{Key: "evaluate-workers", Env: "CICLO_EVALUATE_WORKERS", Value: integer(&w.EvaluateWorkers, worker.EvaluateWorkersDefault), Usage: "concurrent jobs of the evaluate queue in this process"},
		{Key: "sweep-workers", Env: "CICLO_SWEEP_WORKERS", Value: integer(&w.SweepWorkers, worker.SweepWorkersDefault), Usage: "concurrent jobs of the sweep queue in this process"},
		{Key: "email-workers", Env: "CICLO_EMAIL_WORKERS", Value: integer(&w.EmailWorkers, worker.EmailWorkersDefault), Usage: "concurrent jobs of the email queue in this process"},
		{Key: "webhook-workers", Env: "CICLO_WEBHOOK_WORKERS", Value: integer(&w.WebhookWorkers, worker.WebhookWorkersDefault), Usage: "concurrent jobs of the webhook queue in this process"},
		{Key: "job-retention", Env: "CICLO_JOB_RETENTION", Value: duration(&w.JobRetention, worker.JobRetentionDefault), Usage: "how long completed, cancelled and discarded jobs stay in river_job"},
		{Key: "points-expiry-interval", Env: "CICLO_POINTS_EXPIRY_INTERVAL", Value: duration(&w.PointsExpiryInterval, worker.PointsExpiryIntervalDefault), Usage: "how often expired points lots are closed and expiring ones reminded of (points_expired, points_expiring events)"},
		{Key: "report-fold-interval", Env: "CICLO_REPORT_FOLD_INTERVAL", Value: duration(&w.ReportFoldInterval, worker.ReportFoldIntervalDefault), Usage: "how often the report rollups take in what changed since (a report reads the rows written since the last fold raw, so a shorter interval makes reports cheaper and the writes' fold more frequent)"},
		{Key: "tier-sweep-interval", Env: "CICLO_TIER_SWEEP_INTERVAL", Value: duration(&w.TierSweepInterval, worker.TierSweepIntervalDefault), Usage: "how often every customer's loyalty tier is derived again, so a tier falls when its window rolls past (orders and refunds recompute it at once)"},
		{Key: "rescue-after", Env: "CICLO_RESCUE_AFTER", Value: duration(&w.RescueAfter, worker.RescueAfterDefault), Usage: "how long a job may stay running before River presumes its worker dead and runs it again, e.g. a killed worker's emails; must be longer than --job-timeout"},
		{Key: "job-timeout", Env: "CICLO_JOB_TIMEOUT", Value: duration(&w.BatchTimeout, worker.LongestJobTimeout), Usage: "the longest a job that sends may run, a dispatch batch; other jobs get the shorter of this and " + worker.JobTimeoutDefault.String() + "; deliveries a batch has not tried by then get jobs of their own"},
		{Key: "request-timeout", Env: "CICLO_REQUEST_TIMEOUT", Value: duration(&h.RequestTimeout, server.RequestTimeoutDefault), Usage: "deadline of every HTTP request: one stuck behind a database lock is cancelled and answered 503"},
		{Key: "http-read-header-timeout", Env: "CICLO_HTTP_READ_HEADER_TIMEOUT", Value: duration(&h.ReadHeaderTimeout, server.ReadHeaderTimeoutDefault), Usage: "how long a client may take to send a request's headers"},
		{Key: "http-read-timeout", Env: "CICLO_HTTP_READ_TIMEOUT", Value: duration(&h.ReadTimeout, server.ReadTimeoutDefault), Usage: "how long a client may take to send a whole request, body included"},
		{Key: "http-write-timeout", Env: "CICLO_HTTP_WRITE_TIMEOUT", Value: duration(&h.WriteTimeout, server.WriteTimeoutDefault), Usage: "how long a request may take from the end of its headers to the end of its response; longer than --request-timeout, so a request that timed out still gets its 503"},
		{Key: "http-idle-timeout", Env: "CICLO_HTTP_IDLE_TIMEOUT", Value: duration(&h.IdleTimeout, server.IdleTimeoutDefault), Usage: "how long a keep-alive connection waits for its next request"},
		{Key: "http-max-connections", Env: "CICLO_HTTP_MAX_CONNECTIONS", Value: integer(&h.MaxConnections, server.MaxConnectionsDefault), Usage: "open client connections at most; more wait in the kernel's accept queue"},
		{Key: "shutdown-timeout", Env: "CICLO_SHUTDOWN_TIMEOUT", Value: duration(&c.ShutdownTimeout, app.ShutdownTimeoutDefault), Usage: "on SIGTERM, how long running jobs and requests get to finish before they are cancelled"},
		{Key: "config", Env: "CICLO_CONFIG", Value: text(&f.configFile, ""), NoFile: true, Usage: "YAML config file whose keys are these flags' names; flags win over environment variables, which win over the file"},
	}...)
}

// register adds the flags of the settings to cmd; defaults, by key,
// replace the declared defaults for this command.
func (f *flags) register(cmd *cobra.Command, defaults map[string]string) {
	f.conf = registerSettings(cmd, f.settings(), defaults)
	f.db.conf = f.conf
}

// resolve applies the config file and the environment under the parsed flags.
func (f *flags) resolve(cmd *cobra.Command) error {
	return f.conf.resolve(cmd.Flags())
}

// validate checks the values that one setting alone cannot.
func (f *flags) validate() error {
	c, d := &f.cfg, f.conf.describe
	switch c.Role {
	case app.RoleAll, app.RoleAPI, app.RoleWorker:
	default:
		return fmt.Errorf("%s: use api, worker or all", d("role"))
	}
	for _, w := range []struct {
		key string
		n   int
	}{{"evaluate-workers", c.Worker.EvaluateWorkers}, {"sweep-workers", c.Worker.SweepWorkers},
		{"email-workers", c.Worker.EmailWorkers}, {"webhook-workers", c.Worker.WebhookWorkers}} {
		if w.n < 1 {
			return fmt.Errorf("%s: must be at least 1", d(w.key))
		}
	}
	if c.Worker.JobRetention <= 0 {
		return fmt.Errorf("%s: must be a positive duration such as 24h", d("job-retention"))
	}
	if c.Worker.PointsExpiryInterval < time.Second {
		return fmt.Errorf("%s: must be at least 1s; the default is %s", d("points-expiry-interval"), worker.PointsExpiryIntervalDefault)
	}
	if c.Worker.ReportFoldInterval < time.Second {
		return fmt.Errorf("%s: must be at least 1s; the default is %s", d("report-fold-interval"), worker.ReportFoldIntervalDefault)
	}
	if c.Worker.TierSweepInterval < time.Minute {
		return fmt.Errorf("%s: must be at least 1m (it reads every customer); the default is %s", d("tier-sweep-interval"), worker.TierSweepIntervalDefault)
	}
	for _, t := range []struct {
		key string
		d   time.Duration
	}{{"request-timeout", c.HTTP.RequestTimeout}, {"http-read-header-timeout", c.HTTP.ReadHeaderTimeout},
		{"http-read-timeout", c.HTTP.ReadTimeout}, {"http-idle-timeout", c.HTTP.IdleTimeout}} {
		if t.d < 100*time.Millisecond {
			return fmt.Errorf("%s: must be at least 100ms, such as 10s", d(t.key))
		}
	}
	if c.HTTP.WriteTimeout <= c.HTTP.RequestTimeout {
		return fmt.Errorf("%s: must be longer than %s (--request-timeout), or a request that timed out could not be answered 503; the default is %s",
			d("http-write-timeout"), c.HTTP.RequestTimeout, server.WriteTimeoutDefault)
	}
	if c.HTTP.MaxConnections < 1 {
		return fmt.Errorf("%s: must be at least 1; the default is %d", d("http-max-connections"), server.MaxConnectionsDefault)
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("%s: must be a positive duration such as 30s", d("shutdown-timeout"))
	}
	if c.Worker.BatchTimeout < time.Second {
		return fmt.Errorf("%s: must be at least 1s; the default is %s", d("job-timeout"), worker.LongestJobTimeout)
	}
	if c.Worker.RescueAfter <= c.Worker.BatchTimeout {
		return fmt.Errorf("%s: must be longer than %s, the longest a job that sends may run (a dispatch batch, --job-timeout), "+
			"or a job still sending would be run a second time and its emails sent twice; the default is %s",
			d("rescue-after"), c.Worker.BatchTimeout, worker.RescueAfterDefault)
	}
	if (c.UIUser == "") != (c.UIPassword == "") {
		return fmt.Errorf("set both CICLO_UI_USER and CICLO_UI_PASSWORD (--ui-user, --ui-password), or neither")
	}
	return nil
}

// config resolves the database and token and returns the app config, and a
// function that releases a throwaway database if one was started. resolve
// must have run.
func (f *flags) config(ctx context.Context, logger *slog.Logger) (app.Config, func(), error) {
	if err := f.validate(); err != nil {
		return app.Config{}, nil, err
	}
	dbURL, release, err := f.db.resolve(ctx, logger)
	if err != nil {
		return app.Config{}, nil, err
	}
	cfg := f.cfg
	if cfg.APIToken == "" {
		cfg.APIToken = randomToken()
		logger.Warn("config: no CICLO_API_TOKEN set; using a random token for this run", slog.String("api_token", cfg.APIToken))
	}
	cfg.DatabaseURL, cfg.Migrate, cfg.Logger = dbURL, !f.noMigrate, logger
	cfg.ShopifySecrets, cfg.WooCommerceSecrets = hmacsig.Secrets(f.shopifySecret), hmacsig.Secrets(f.wooCommerceSecret)
	warnMailSetup(logger, &cfg)
	return cfg, release, nil
}

// warnMailSetup warns when email goes to a real SMTP server with settings
// only fit for trying ciclo out: a sender at localhost (receivers reject
// or junk it) or unsubscribe links that are not https (RFC 8058 one-click
// unsubscribe needs https, and big mailbox providers require it).
func warnMailSetup(logger *slog.Logger, cfg *app.Config) {
	if cfg.SMTPURL == "" {
		return // the outbox: nobody receives these
	}
	from := cfg.From
	if from == "" {
		from = app.FromDefault
	}
	if addr, err := mail.ParseAddress(from); err == nil {
		domain := strings.ToLower(addr.Address[strings.LastIndex(addr.Address, "@")+1:])
		if domain == "localhost" || strings.HasSuffix(domain, ".localhost") {
			logger.Warn("config: email goes to an SMTP server but the sender is still at localhost; "+
				"set CICLO_FROM (--from) to an address of your sending domain, e.g. \"Shop <news@shop.example>\"",
				slog.String("from", from))
		}
	}
	if u, err := url.Parse(cfg.PublicURL); cfg.PublicURL == "" || err != nil || u.Scheme != "https" {
		shown := cfg.PublicURL
		if shown == "" {
			shown = "http://localhost:PORT (the default)"
		}
		logger.Warn("config: email goes to an SMTP server but unsubscribe links are not https; "+
			"one-click unsubscribe (RFC 8058) needs https: set CICLO_PUBLIC_URL (--public-url) to the https URL recipients reach ciclo at",
			slog.String("public_url", shown))
	}
}

// dbFlags choose the database: DATABASE_URL, or else a local one.
type dbFlags struct {
	url, dataDir string
	// demo: the local server's demoDatabase, else a throwaway cluster;
	// never the data folder or the database serve uses.
	demo bool
	conf *settingSet // tells whether the user named the data folder
}

// demoDatabase is the demo's database on a local server, kept apart from
// serve's (localpg.DatabaseDefault) so demo customers never mix with real ones.
const demoDatabase = "ciclo_demo"

// settings are --database-url, and --data-dir for commands that keep data.
func (d *dbFlags) settings() []setting {
	if d.demo {
		return []setting{{Key: "database-url", Env: "DATABASE_URL", Value: text(&d.url, ""),
			Usage: "Postgres URL; empty: database " + demoDatabase + " on the local server at 127.0.0.1:5432, else a throwaway cluster deleted on exit"}}
	}
	def, err := localpg.DefaultDataDir()
	if err != nil {
		def = ""
	}
	return []setting{
		{Key: "database-url", Env: "DATABASE_URL", Value: text(&d.url, ""),
			Usage: "Postgres URL; empty: the durable cluster in --data-dir if it holds one, else the local server at 127.0.0.1:5432, else a new durable cluster in --data-dir"},
		{Key: "data-dir", Env: localpg.DataDirEnv, Value: text(&d.dataDir, def),
			Usage: "folder of the embedded Postgres cluster used without DATABASE_URL; naming it always uses it; it survives restarts"},
	}
}

// register adds the database flags alone, for the commands that need only
// a database (migrate, import, bench); they resolve them with resolveAlone.
func (d *dbFlags) register(cmd *cobra.Command) {
	d.conf = registerSettings(cmd, d.settings(), nil)
}

// resolveAlone reads the flags register added, with their environment
// variables (DATABASE_URL), then resolves the database as resolve does.
func (d *dbFlags) resolveAlone(cmd *cobra.Command, logger *slog.Logger) (string, func(), error) {
	if err := d.conf.resolve(cmd.Flags()); err != nil {
		return "", nil, err
	}
	return d.resolve(cmd.Context(), logger)
}

// resolve returns the database to use and a function that stops a
// cluster started for it. Without a URL it uses the durable cluster in the
// data folder or the local server (the demo: its own database there, or a
// throwaway cluster), and logs which and where.
func (d *dbFlags) resolve(ctx context.Context, logger *slog.Logger) (string, func(), error) {
	if d.url != "" {
		created, err := localpg.EnsureDatabase(ctx, d.url)
		if err != nil {
			logger.Debug("config: could not check that the database exists", slog.String("error", err.Error()))
		} else if created {
			logger.Info("config: created the database named in DATABASE_URL")
		}
		return d.url, func() {}, nil
	}
	opts := &localpg.Options{Logger: logger}
	if d.demo {
		opts.Database, opts.AllowThrowaway = demoDatabase, true
	} else {
		if d.dataDir == "" {
			return "", nil, fmt.Errorf("no DATABASE_URL and no data folder: set DATABASE_URL, or %s (--data-dir) to a folder for ciclo's Postgres cluster", localpg.DataDirEnv)
		}
		opts.DataDir, opts.OnlyDataDir = d.dataDir, d.conf != nil && d.conf.isSet("data-dir")
	}
	res, err := localpg.Find(ctx, opts)
	if err != nil {
		return "", nil, fmt.Errorf("no DATABASE_URL: %w", err)
	}
	if res.DataDir != "" {
		logger.Info("config: no DATABASE_URL set; "+res.How,
			slog.String("data_dir", res.DataDir),
			slog.String("move_to_a_server", "while ciclo runs: pg_dump -Fc '"+res.URL+"' > ciclo.dump; "+
				"then pg_restore --no-owner -d \"$DATABASE_URL\" ciclo.dump and start ciclo with DATABASE_URL set"))
	} else {
		logger.Info("config: no DATABASE_URL set; " + res.How)
	}
	return res.URL, func() {
		if err := res.Stop(); err != nil {
			logger.Warn("config: stopping the embedded Postgres failed", slog.String("error", err.Error()))
		}
	}, nil
}

func randomToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
