package main

import (
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/migrations"
)

func newMigrateCmd() *cobra.Command {
	var db dbFlags
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply database migrations (ciclo's tables and River's)",
		Long: `migrate brings the database schema up to date: River's job tables and
ciclo's own. It is idempotent and safe to run from several processes.

Without DATABASE_URL it migrates the database serve would use: the durable
cluster in --data-dir, or the local server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger := newLogger(slog.LevelInfo)
			ctx := cmd.Context()
			url, release, err := db.resolveAlone(cmd, logger)
			if err != nil {
				return err
			}
			defer release()
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				return fmt.Errorf("database: %w", err)
			}
			defer pool.Close()
			if err := migrations.Up(ctx, pool, logger); err != nil {
				return err
			}
			st, err := migrations.Check(ctx, pool)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schema is current: ciclo version %d, river version %d\n", st.CicloCurrent, st.RiverCurrent)
			return nil
		},
	}
	db.register(cmd)
	return cmd
}
