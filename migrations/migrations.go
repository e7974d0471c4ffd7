// Package migrations holds ciclo's SQL schema and applies it together with
// River's own tables.
//
// ciclo's tables are goose migrations embedded from sql/; River's tables come
// from rivermigrate and are never copied here. Both are safe to apply from
// several processes at once: goose holds a Postgres advisory lock while it
// migrates, and River's migrations run in a transaction.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// VersionTable is the table goose records ciclo's applied migrations in.
const VersionTable = "ciclo_schema_version"

//go:embed sql/*.sql
var files embed.FS

// Status says how far a database's schema is from this build's.
type Status struct {
	CicloCurrent, CicloTarget int64 // applied and latest ciclo migration
	RiverCurrent, RiverTarget int   // applied and latest River migration
}

// Current reports whether both schemas are fully applied.
func (s Status) Current() bool {
	return s.CicloCurrent == s.CicloTarget && s.RiverCurrent == s.RiverTarget
}

// Up applies every pending migration, River's first, and logs what it did.
// It is idempotent.
func Up(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	rm, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	res, err := rm.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("migrate river schema: %w", err)
	}
	for _, v := range res.Versions {
		logger.InfoContext(ctx, "migrations: applied river migration", slog.Int("version", v.Version), slog.String("name", v.Name))
	}

	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := provider(db, true)
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate ciclo schema: %w", err)
	}
	for _, r := range results {
		logger.InfoContext(ctx, "migrations: applied ciclo migration", slog.Int64("version", r.Source.Version), slog.String("file", r.Source.Path))
	}
	return nil
}

// Check reports how far the database's schema is from this build's without
// changing anything.
func Check(ctx context.Context, pool *pgxpool.Pool) (Status, error) {
	var st Status
	rm, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return st, fmt.Errorf("river migrator: %w", err)
	}
	all := rm.AllVersions()
	st.RiverTarget = all[len(all)-1].Version
	existing, err := rm.ExistingVersions(ctx)
	if err != nil {
		// No river_migration table yet means nothing was applied.
		existing = nil
	}
	if len(existing) > 0 {
		st.RiverCurrent = existing[len(existing)-1].Version
	}

	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	// Reading versions needs no migration lock: Check runs on every /readyz
	// probe and must not wait behind a running `ciclo migrate`.
	p, err := provider(db, false)
	if err != nil {
		return st, err
	}
	st.CicloCurrent, st.CicloTarget, err = p.GetVersions(ctx)
	if err != nil {
		return st, fmt.Errorf("read ciclo schema version: %w", err)
	}
	return st, nil
}

// provider returns goose's provider for ciclo's migrations; with locked,
// it holds Postgres's session lock while it works, so that concurrent
// migrators take turns.
func provider(db *sql.DB, locked bool) (*goose.Provider, error) {
	sub, err := fs.Sub(files, "sql")
	if err != nil {
		return nil, fmt.Errorf("embedded migrations: %w", err)
	}
	// Out-of-order migrations are applied: each of ciclo's is independent
	// of the ones numbered after it, so a database that got a later one
	// first (a build with one feature before another) still gets the one it
	// lacks instead of refusing to start.
	opts := []goose.ProviderOption{goose.WithTableName(VersionTable), goose.WithAllowOutofOrder(true)}
	if locked {
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, fmt.Errorf("migration locker: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("goose provider: %w", err)
	}
	return p, nil
}
