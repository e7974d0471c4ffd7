// Package testdb gives tests a real, migrated Postgres schema of their own.
//
// The database comes from TEST_DATABASE_URL, defaulting to a local server
// (DefaultURL). Each call to New creates a fresh schema, applies ciclo's and
// River's migrations in it and drops it when the test ends, so tests can run
// in parallel and run a River client without seeing each other's rows.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/migrations"
)

// DefaultURL is used when TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/ciclo_test?sslmode=disable"

var createOnce sync.Once

// URL returns the test database URL.
func URL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// DB is a migrated schema of its own for one test.
type DB struct {
	Pool   *pgxpool.Pool
	Schema string
	URL    string // connection URL whose search_path is Schema
}

// New creates a fresh migrated schema and a pool bound to it. Both are
// removed in t.Cleanup.
func New(t testing.TB) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	EnsureDatabase(t)

	schema := "t_" + randomHex(6)
	admin, err := pgx.Connect(ctx, URL())
	require.NoError(t, err, "connect to test database %s (set TEST_DATABASE_URL)", URL())
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	require.NoError(t, admin.Close(ctx))

	url := WithSearchPath(URL(), schema)
	cfg, err := pgxpool.ParseConfig(url)
	require.NoError(t, err)
	cfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)

	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	require.NoError(t, migrations.Up(ctx, pool, logger))

	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, URL())
		if err != nil {
			t.Logf("testdb: drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("testdb: drop schema %s: %v", schema, err)
		}
	})
	return &DB{Pool: pool, Schema: schema, URL: url}
}

// Count returns the number of rows in table matching the optional where
// clause (with args), for asserting on real outcomes.
func (d *DB) Count(t testing.TB, table, where string, args ...any) int {
	t.Helper()
	q := "SELECT count(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	var n int
	require.NoError(t, d.Pool.QueryRow(context.Background(), q, args...).Scan(&n), q)
	return n
}

// WithSearchPath returns url with its search_path set to schema.
func WithSearchPath(url, schema string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema
}

// EnsureDatabase creates the test database when it does not exist yet
// (New calls it; a benchmark that keeps its own schema calls it first).
func EnsureDatabase(t testing.TB) {
	t.Helper()
	createOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cfg, err := pgx.ParseConfig(URL())
		if err != nil {
			return
		}
		name := cfg.Database
		cfg.Database = "postgres"
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return // New reports the real connection error.
		}
		defer conn.Close(ctx)
		var exists bool
		_ = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
		if !exists {
			_, _ = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
		}
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("testdb: random: %v", err))
	}
	return hex.EncodeToString(b)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
