package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/smtpsink"
	"github.com/ciclohq/ciclo/worker"
)

// schemaPrefix starts the name of every schema a run creates.
const schemaPrefix = "ciclo_bench_"

// benchFrom is the sender of every email of a run.
const benchFrom = "Shop <shop@example.com>"

// Machine is where a run measured.
type Machine struct {
	CPUs       int     `json:"cpus"`
	MemoryGiB  float64 `json:"memory_gib"`
	Postgres   string  `json:"postgres"`
	Go         string  `json:"go"`
	LoadBefore string  `json:"load_average_before"`
	LoadAfter  string  `json:"load_average_after"`
	Started    string  `json:"started"`
	Host       string  `json:"host"`
}

// env is one row's ciclo process on a schema of its own.
type env struct {
	schema string
	url    string        // DatabaseURL with search_path=schema
	pool   *pgxpool.Pool // the row's own connections (baselines, loading)
	app    *app.App
	smtp   *smtpsink.Server
	base   string // http://host:port of the API
	token  string
	http   *http.Client
	dir    string
	admin  string // the target database's URL, to drop the schema
	logger *slog.Logger
}

// envOptions configure newEnv.
type envOptions struct {
	role  string // app.RoleAll or app.RoleAPI
	rules string // the rules file's content
	// onMessage, optional, sees each email the SMTP server accepts.
	onMessage func(to []string)
}

// newEnv creates a fresh schema, migrates it and starts ciclo on it with an
// SMTP server that keeps no message. close undoes all of it.
func (r *runner) newEnv(ctx context.Context, o envOptions) (_ *env, err error) {
	e := &env{schema: schemaPrefix + randomHex(6), admin: r.cfg.DatabaseURL, token: randomHex(16), logger: r.logger}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	conn, err := pgx.Connect(ctx, r.cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect to database: %w (check DATABASE_URL)", err)
	}
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+e.schema)
	_ = conn.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("create schema %s: %w", e.schema, err)
	}
	r.schemas = append(r.schemas, e.schema)
	if e.url, err = withSearchPath(r.cfg.DatabaseURL, e.schema); err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	pc.MaxConns = 12
	if e.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	if e.dir, err = os.MkdirTemp("", "ciclo-bench-"); err != nil {
		return nil, fmt.Errorf("temporary folder: %w", err)
	}
	rulesPath := filepath.Join(e.dir, "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(o.rules), 0o600); err != nil {
		return nil, fmt.Errorf("write rules: %w", err)
	}
	if e.smtp, err = smtpsink.Listen(smtpsink.Options{Discard: true, OnMessage: o.onMessage}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	a, err := app.New(ctx, app.Config{
		DatabaseURL: e.url, RulesPath: rulesPath, APIToken: e.token, Listener: ln,
		SMTPURL: e.smtp.URL, From: benchFrom, Migrate: true, Role: o.role,
		Logger: r.logger, NoWatchRules: true, Worker: worker.Config{Schema: e.schema},
	})
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("start ciclo: %w", err)
	}
	if err := a.Start(ctx); err != nil {
		_ = ln.Close()
		a.Pool.Close()
		return nil, fmt.Errorf("start ciclo: %w", err)
	}
	e.app, e.base = a, "http://"+a.Addr()
	e.http = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	return e, nil
}

// close stops ciclo and drops the schema; it reports failures as progress
// since a row's figures are already taken.
func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if e.app != nil {
		_ = e.app.Stop(ctx)
		e.app.Pool.Close()
	}
	if e.smtp != nil {
		_ = e.smtp.Close()
	}
	if e.pool != nil {
		e.pool.Close()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	if e.http != nil {
		e.http.CloseIdleConnections()
	}
	conn, err := pgx.Connect(ctx, e.admin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: drop schema %s: %v\n", e.schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+e.schema+" CASCADE"); err != nil {
		fmt.Fprintf(os.Stderr, "bench: drop schema %s: %v\n", e.schema, err)
	}
}

// waitJobs waits until no job of the given kinds is left to run, polling
// River's job list; a job that failed (retryable or discarded) is an error.
func waitJobs(ctx context.Context, client *river.Client[pgx.Tx], timeout time.Duration, kinds ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		failed, err := client.JobList(ctx, river.NewJobListParams().Kinds(kinds...).
			States(rivertype.JobStateRetryable, rivertype.JobStateDiscarded).First(1))
		if err != nil {
			return fmt.Errorf("list jobs: %w", err)
		}
		if len(failed.Jobs) > 0 {
			j := failed.Jobs[0]
			msg := ""
			if len(j.Errors) > 0 {
				msg = j.Errors[len(j.Errors)-1].Error
			}
			return fmt.Errorf("job %s %d failed: %s", j.Kind, j.ID, msg)
		}
		left, err := client.JobList(ctx, river.NewJobListParams().Kinds(kinds...).
			States(rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled).First(1))
		if err != nil {
			return fmt.Errorf("list jobs: %w", err)
		}
		if len(left.Jobs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jobs %s still running after %s: %w", strings.Join(kinds, ", "), timeout, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// count returns the number of rows of a table of the row's schema.
func (e *env) count(ctx context.Context, table string) (int, error) {
	var n int
	if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, err)
	}
	return n, nil
}

// machine describes this machine and the database's server.
func machine(ctx context.Context, dbURL string) (Machine, error) {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadAverage(),
		Started: time.Now().UTC().Format(time.RFC3339), MemoryGiB: memoryGiB()}
	m.Host, _ = os.Hostname()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return m, fmt.Errorf("connect to database: %w (check DATABASE_URL)", err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&m.Postgres); err != nil {
		return m, fmt.Errorf("server version: %w", err)
	}
	if i := strings.Index(m.Postgres, " on "); i > 0 {
		m.Postgres = m.Postgres[:i]
	}
	return m, nil
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute figures; empty elsewhere.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// memoryGiB is MemTotal from /proc/meminfo; 0 elsewhere.
func memoryGiB() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return float64(int(kb/(1<<20)*10)) / 10
		}
	}
	return 0
}

// withSearchPath returns dbURL with its search_path set to schema only,
// replacing any the URL names.
func withSearchPath(dbURL, schema string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("DATABASE_URL: want a postgres:// URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// redact drops the password from a database URL.
func redact(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "(unparsable URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("bench: random: %v", err))
	}
	return hex.EncodeToString(b)
}
