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
)

// flags are the settings shared by serve and demo; each has an environment
// variable, and a flag given on the command line wins over it.
type flags struct {
	rules, token, smtpURL, outbox, addr, publicURL, from, secret string
	webhookSecret, unsubscribeMailto                             string
	shopifySecret, wooCommerceSecret                             string
	shopifyMaxAge                                                time.Duration
	webhookAllowHosts                                            []string
	webhookAllowPrivate, noMigrate                               bool
	configFile                                                   string
	db                                                           dbFlags
	ops                                                          opsFlags
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func (f *flags) register(cmd *cobra.Command, defaultRules string) {
	fs := cmd.Flags()
	f.db.register(cmd)
	fs.StringVar(&f.rules, "rules", env("CICLO_RULES", defaultRules), "rules file (env CICLO_RULES)")
	fs.StringVar(&f.token, "api-token", env("CICLO_API_TOKEN", ""), "bearer token the HTTP API requires (env CICLO_API_TOKEN); empty: a random one, printed at start")
	fs.StringVar(&f.smtpURL, "smtp-url", env("CICLO_SMTP_URL", ""), "SMTP server, smtp://user:pass@host:port?tls=none|starttls|tls (env CICLO_SMTP_URL); empty: write emails to the outbox")
	fs.StringVar(&f.outbox, "outbox-dir", env("CICLO_OUTBOX_DIR", app.OutboxDirDefault), "folder for .eml files when no SMTP server is set (env CICLO_OUTBOX_DIR)")
	fs.StringVar(&f.addr, "addr", env("CICLO_ADDR", app.AddrDefault), "HTTP listen address (env CICLO_ADDR)")
	fs.StringVar(&f.publicURL, "public-url", env("CICLO_PUBLIC_URL", ""), "URL recipients reach this server at, for unsubscribe links (env CICLO_PUBLIC_URL); default http://localhost:PORT")
	fs.StringVar(&f.from, "from", env("CICLO_FROM", app.FromDefault), "sender of every email (env CICLO_FROM)")
	fs.StringVar(&f.secret, "secret", env("CICLO_SECRET", ""), "secret that signs unsubscribe links (env CICLO_SECRET); default: generated once and kept in the database")
	fs.StringVar(&f.webhookSecret, "webhook-secret", env("CICLO_WEBHOOK_SECRET", ""), "signs webhooks whose rule sets no secret (env CICLO_WEBHOOK_SECRET)")
	fs.StringVar(&f.unsubscribeMailto, "unsubscribe-mailto", env("CICLO_UNSUBSCRIBE_MAILTO", ""), "address for the mailto: entry of List-Unsubscribe (env CICLO_UNSUBSCRIBE_MAILTO)")
	fs.StringSliceVar(&f.webhookAllowHosts, "webhook-allow-host", splitList(env("CICLO_WEBHOOK_ALLOW_HOSTS", "")), "webhook hosts allowed even on private addresses (env CICLO_WEBHOOK_ALLOW_HOSTS, comma-separated)")
	fs.BoolVar(&f.webhookAllowPrivate, "webhook-allow-private", env("CICLO_WEBHOOK_ALLOW_PRIVATE", "") == "true", "allow webhooks to private and loopback addresses (env CICLO_WEBHOOK_ALLOW_PRIVATE=true)")
	fs.StringVar(&f.shopifySecret, "shopify-secret", env("CICLO_SHOPIFY_SECRET", ""), "Shopify app client secret that verifies POST /v1/integrations/shopify; comma-separated during a rotation (env CICLO_SHOPIFY_SECRET)")
	fs.DurationVar(&f.shopifyMaxAge, "shopify-max-age", f.ops.envDuration("CICLO_SHOPIFY_MAX_AGE", server.ShopifyMaxAgeDefault), "oldest X-Shopify-Triggered-At accepted for an event ciclo has not seen (env CICLO_SHOPIFY_MAX_AGE)")
	fs.StringVar(&f.wooCommerceSecret, "woocommerce-secret", env("CICLO_WOOCOMMERCE_SECRET", ""), "WooCommerce webhook secret that verifies POST /v1/integrations/woocommerce; comma-separated during a rotation (env CICLO_WOOCOMMERCE_SECRET)")
	fs.BoolVar(&f.noMigrate, "no-migrate", false, "do not apply migrations at start; refuse to start if the schema is behind")
	fs.StringVar(&f.configFile, "config", env("CICLO_CONFIG", ""), "YAML config file whose keys are these flags' names (env CICLO_CONFIG); flags win over environment variables, which win over the file")
	f.ops.register(fs)
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// config resolves the database and token and returns the app config, and a
// function that releases a throwaway database if one was started.
func (f *flags) config(ctx context.Context, logger *slog.Logger) (app.Config, func(), error) {
	if err := f.ops.validate(); err != nil {
		return app.Config{}, nil, err
	}
	dbURL, release, err := f.db.resolve(ctx, logger)
	if err != nil {
		return app.Config{}, nil, err
	}
	token := f.token
	if token == "" {
		token = randomToken()
		logger.Warn("config: no CICLO_API_TOKEN set; using a random token for this run", slog.String("api_token", token))
	}
	cfg := app.Config{
		DatabaseURL: dbURL, RulesPath: f.rules, APIToken: token, Secret: f.secret,
		Addr: f.addr, PublicURL: f.publicURL, SMTPURL: f.smtpURL, OutboxDir: f.outbox, From: f.from,
		WebhookSecret: f.webhookSecret, UnsubscribeMailto: f.unsubscribeMailto,
		WebhookAllowHosts: f.webhookAllowHosts, WebhookAllowPrivate: f.webhookAllowPrivate,
		Migrate: !f.noMigrate, Logger: logger,
		ShopifySecrets: hmacsig.Secrets(f.shopifySecret), ShopifyMaxAge: f.shopifyMaxAge, WooCommerceSecrets: hmacsig.Secrets(f.wooCommerceSecret),
	}
	f.ops.apply(&cfg)
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
	// dataDirSet: the user named the data folder (flag or environment).
	dataDirSet func() bool
}

// demoDatabase is the demo's database on a local server, kept apart from
// serve's (localpg.DatabaseDefault) so demo customers never mix with real ones.
const demoDatabase = "ciclo_demo"

// register adds --database-url, and --data-dir for commands that keep data.
func (d *dbFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	if d.demo {
		fs.StringVar(&d.url, "database-url", env("DATABASE_URL", ""),
			"Postgres URL (env DATABASE_URL); empty: database "+demoDatabase+" on the local server at 127.0.0.1:5432, else a throwaway cluster deleted on exit")
		return
	}
	fs.StringVar(&d.url, "database-url", env("DATABASE_URL", ""),
		"Postgres URL (env DATABASE_URL); empty: the durable cluster in --data-dir if it holds one, else the local server at 127.0.0.1:5432, else a new durable cluster in --data-dir")
	def, err := localpg.DefaultDataDir()
	if err != nil {
		def = ""
	}
	fs.StringVar(&d.dataDir, "data-dir", env(localpg.DataDirEnv, def),
		"folder of the embedded Postgres cluster used without DATABASE_URL (env "+localpg.DataDirEnv+"); naming it always uses it; it survives restarts")
	d.dataDirSet = func() bool {
		_, inEnv := os.LookupEnv(localpg.DataDirEnv)
		return cmd.Flags().Changed("data-dir") || inEnv
	}
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
		opts.DataDir, opts.OnlyDataDir = d.dataDir, d.dataDirSet != nil && d.dataDirSet()
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
