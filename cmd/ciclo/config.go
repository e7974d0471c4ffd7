package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/localpg"
)

// flags are the settings shared by serve and demo; each has an environment
// variable, and a flag given on the command line wins over it.
type flags struct {
	databaseURL, rules, token, smtpURL, outbox, addr, publicURL, from, secret string
	webhookSecret, unsubscribeMailto                                          string
	webhookAllowHosts                                                         []string
	webhookAllowPrivate, noMigrate                                            bool
	configFile                                                                string
	ops                                                                       opsFlags
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func (f *flags) register(cmd *cobra.Command, defaultRules string) {
	fs := cmd.Flags()
	fs.StringVar(&f.databaseURL, "database-url", env("DATABASE_URL", ""), "Postgres URL (env DATABASE_URL); empty: the local server on 127.0.0.1:5432, else a throwaway cluster")
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
	dbURL, release, err := resolveDatabase(ctx, f.databaseURL, logger)
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
	}
	f.ops.apply(&cfg)
	return cfg, release, nil
}

// resolveDatabase returns the database to use. With no URL it uses the local
// server, or starts a throwaway cluster, and logs which.
func resolveDatabase(ctx context.Context, url string, logger *slog.Logger) (string, func(), error) {
	if url != "" {
		created, err := localpg.EnsureDatabase(ctx, url)
		if err != nil {
			logger.Debug("config: could not check that the database exists", slog.String("error", err.Error()))
		} else if created {
			logger.Info("config: created the database named in DATABASE_URL")
		}
		return url, func() {}, nil
	}
	res, err := localpg.Find(ctx, &localpg.Options{AllowThrowaway: true, Logger: logger})
	if err != nil {
		return "", nil, fmt.Errorf("no DATABASE_URL and no local Postgres: %w", err)
	}
	logger.Info("config: no DATABASE_URL set; " + res.How)
	return res.URL, func() {
		if err := res.Stop(); err != nil {
			logger.Warn("config: stopping throwaway Postgres failed", slog.String("error", err.Error()))
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
