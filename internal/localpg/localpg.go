// Package localpg finds a Postgres database for ciclo when DATABASE_URL is
// unset, so that `ciclo serve` still starts on a developer machine.
//
// Find tries a few well-known local servers first (TCP on 127.0.0.1:5432,
// then the Debian/Ubuntu unix socket directory) and creates ciclo's database
// there if it is missing. When none answers it runs initdb and pg_ctl from
// the system's Postgres binaries to start a private cluster: a durable one
// in a data folder (Options.DataDir) that survives restarts and that
// Result.Stop only shuts down, or, only when asked for (the demo), a
// throwaway one in a temporary directory that Result.Stop deletes.
// Result.How says in one sentence which of these happened.
package localpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DatabaseDefault is the database Find uses and creates when
// Options.Database is empty.
const DatabaseDefault = "ciclo"

// CandidateTimeout bounds each attempt to reach one candidate server.
const CandidateTimeout = 5 * time.Second

// maxIdentifierLen is Postgres' NAMEDATALEN-1; longer names are silently
// truncated by the server, which would make CREATE DATABASE and the later
// connection disagree about the name.
const maxIdentifierLen = 63

// SQLSTATEs of CREATE DATABASE losing a race against another creator of
// the same name.
const (
	pgDuplicateDatabase = "42P04"
	pgUniqueViolation   = "23505"
)

// ErrNoPostgres is returned (wrapped, with what was tried) by Find when no
// candidate server answered and no throwaway cluster was started.
var ErrNoPostgres = errors.New("no Postgres server found")

// Result says which database Find chose and how.
type Result struct {
	// URL is a pgx connection URL to a database that exists.
	URL string
	// How is a human sentence for the log, e.g. "using local Postgres at
	// 127.0.0.1:5432 (database ciclo, created)".
	How string
	// Stop stops and removes a throwaway cluster, and stops a durable
	// cluster this call started (keeping its folder); it is a no-op for an
	// existing server. It is safe to call more than once.
	Stop func() error
	// DataDir is the durable cluster's folder, "" when none is used.
	DataDir string

	// dir is the throwaway cluster's temporary directory, "" otherwise.
	dir string
	// cluster is the throwaway cluster, nil otherwise.
	cluster *cluster
}

// Options configures Find. A nil *Options or zero fields mean defaults.
type Options struct {
	// Database is the database name to use, created if missing.
	// Default DatabaseDefault ("ciclo").
	Database string
	// Candidates are connection URLs (their database part is replaced by
	// Database) tried in order. Default DefaultCandidates().
	Candidates []string
	// DataDir is the folder of a durable cluster, started (and created if
	// missing) from the system's Postgres binaries when no candidate
	// answers. A folder that already holds a cluster is used before the
	// candidates are tried, so data written there stays in use when a
	// local server appears later. Default "": no durable cluster.
	DataDir string
	// OnlyDataDir uses the cluster in DataDir without trying the
	// candidates (the user named the folder). Default false.
	OnlyDataDir bool
	// AllowThrowaway lets Find start a temporary cluster, deleted by
	// Result.Stop, when no candidate answers and DataDir is empty. Only
	// for throwaway data (the demo). Default false.
	AllowThrowaway bool
	// Logger receives progress at debug and info level. Default: discard.
	Logger *slog.Logger
}

// DefaultCandidates returns the servers Find tries when Options.Candidates
// is empty: TCP on 127.0.0.1:5432 and the Debian/Ubuntu unix socket
// directory, both as user postgres.
func DefaultCandidates() []string {
	return []string{
		"postgres://postgres@127.0.0.1:5432/?sslmode=disable",
		"postgres:///?host=/var/run/postgresql&user=postgres",
	}
}

// Find returns a database for ciclo: the durable cluster in opts.DataDir if
// it exists or opts.OnlyDataDir, else the first candidate server that
// accepts a connection (creating opts.Database on it if missing), else the
// durable cluster in opts.DataDir, created, or, if opts.AllowThrowaway, a
// freshly started throwaway cluster. The caller
// must call Result.Stop on exit. When nothing works it returns an error
// wrapping ErrNoPostgres (or the throwaway failure) that names every
// server tried and says how to fix it.
func Find(ctx context.Context, opts *Options) (*Result, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Database == "" {
		o.Database = DatabaseDefault
	}
	if len(o.Candidates) == 0 {
		o.Candidates = DefaultCandidates()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := validateName(o.Database); err != nil {
		return nil, err
	}

	if o.DataDir != "" && (o.OnlyDataDir || IsCluster(o.DataDir)) {
		res, err := startDurable(ctx, o.DataDir, o.Database, o.Logger)
		if err != nil {
			return nil, fmt.Errorf("durable cluster in %s: %w", o.DataDir, err)
		}
		return res, nil
	}

	var tried []string
	for _, candidate := range o.Candidates {
		res, addr, err := tryCandidate(ctx, candidate, o.Database)
		if err == nil {
			o.Logger.DebugContext(ctx, "localpg: found server", slog.String("addr", addr))
			return res, nil
		}
		o.Logger.DebugContext(ctx, "localpg: candidate did not answer",
			slog.String("addr", addr), slog.String("error", err.Error()))
		tried = append(tried, fmt.Sprintf("%s: %v", addr, err))
		if ctx.Err() != nil {
			return nil, fmt.Errorf("find Postgres: %w", ctx.Err())
		}
	}
	triedMsg := strings.Join(tried, "; ")

	if o.DataDir != "" {
		o.Logger.InfoContext(ctx, "localpg: no local Postgres answered, creating a durable cluster",
			slog.String("tried", triedMsg), slog.String("data_dir", o.DataDir))
		res, err := startDurable(ctx, o.DataDir, o.Database, o.Logger)
		if err != nil {
			return nil, fmt.Errorf("no local Postgres answered (tried %s), and starting a durable cluster in %s failed: %w", triedMsg, o.DataDir, err)
		}
		return res, nil
	}
	if !o.AllowThrowaway {
		return nil, fmt.Errorf("%w (tried %s); set DATABASE_URL to a Postgres database, or start Postgres locally", ErrNoPostgres, triedMsg)
	}

	o.Logger.InfoContext(ctx, "localpg: no local Postgres answered, starting a throwaway cluster",
		slog.String("tried", triedMsg))
	res, err := startThrowaway(ctx, o.Database, o.Logger)
	if err != nil {
		return nil, fmt.Errorf("no local Postgres answered (tried %s), and starting a throwaway cluster failed: %w", triedMsg, err)
	}
	return res, nil
}

// tryCandidate connects to one candidate server and makes sure the
// database exists. addr describes the server without credentials, for
// messages.
func tryCandidate(ctx context.Context, candidate, database string) (*Result, string, error) {
	dbURL, err := withDatabase(candidate, database)
	if err != nil {
		return nil, redact(candidate), err
	}
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, redact(candidate), fmt.Errorf("parse candidate URL: %w", err)
	}
	addr := describeAddr(cfg.Host, cfg.Port)

	ctx, cancel := context.WithTimeout(ctx, CandidateTimeout)
	defer cancel()
	created, err := EnsureDatabase(ctx, dbURL)
	if err != nil {
		return nil, addr, err
	}
	state := "already existed"
	if created {
		state = "created"
	}
	return &Result{
		URL:  dbURL,
		How:  fmt.Sprintf("using local Postgres at %s (database %s, %s)", addr, database, state),
		Stop: func() error { return nil },
	}, addr, nil
}

// EnsureDatabase creates the database named by url if it does not exist,
// connecting to the same server's "postgres" database to do so, and reports
// whether it created it. It is safe to call concurrently: losing a creation
// race counts as "already existed". If the "postgres" database cannot be
// reached but the target database can, the target exists and no error is
// returned, so a role without access to "postgres" still works with an
// existing database.
func EnsureDatabase(ctx context.Context, url string) (created bool, err error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return false, fmt.Errorf("parse database URL: %w", err)
	}
	name := cfg.Database
	if name == "" {
		return false, fmt.Errorf("database URL for %s names no database", describeAddr(cfg.Host, cfg.Port))
	}
	if err := validateName(name); err != nil {
		return false, err
	}

	adminCfg := cfg.Copy()
	adminCfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, adminCfg)
	if err != nil {
		// Maybe we may not use "postgres" but the database already exists.
		if conn, err2 := pgx.ConnectConfig(ctx, cfg); err2 == nil {
			_ = conn.Close(ctx)
			return false, nil
		}
		return false, fmt.Errorf("connect to %s: %w", describeAddr(cfg.Host, cfg.Port), err)
	}
	defer func() { _ = admin.Close(context.WithoutCancel(ctx)) }()

	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return false, fmt.Errorf("check database %q exists: %w", name, err)
	}
	if exists {
		return false, nil
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		// Losing a race to a concurrent creator shows as duplicate_database
		// or, when both pass the catalog check at once, as a unique
		// violation on pg_database; either way the database now exists.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == pgDuplicateDatabase || pgErr.Code == pgUniqueViolation) {
			return false, nil
		}
		return false, fmt.Errorf("create database %q (the role needs CREATEDB, or create it yourself): %w", name, err)
	}
	return true, nil
}

// validateName rejects database names Postgres would truncate or refuse.
func validateName(name string) error {
	if len(name) > maxIdentifierLen {
		return fmt.Errorf("database name %q is longer than %d bytes", name, maxIdentifierLen)
	}
	if strings.ContainsRune(name, 0) {
		return fmt.Errorf("database name %q contains a NUL byte", name)
	}
	return nil
}

// withDatabase returns the postgres:// URL rawURL with its database set to
// database.
func withDatabase(rawURL, database string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("candidate %q is not a postgres:// URL", redact(rawURL))
	}
	u.Path = "/" + database
	u.RawPath = "/" + url.PathEscape(database)
	return u.String(), nil
}

// redact hides a password in a URL meant for messages.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// describeAddr names a server for humans: "127.0.0.1:5432", or
// "unix socket /var/run/postgresql/.s.PGSQL.5432".
func describeAddr(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return fmt.Sprintf("unix socket %s/.s.PGSQL.%d", strings.TrimSuffix(host, "/"), port)
	}
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}
