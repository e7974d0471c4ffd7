package migrations_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/migrations"
)

func TestMigrations(t *testing.T) {
	t.Parallel()

	t.Run("UpIsIdempotentAndCurrent", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		ctx := context.Background()
		require.NoError(t, migrations.Up(ctx, db.Pool, slog.New(slog.DiscardHandler)))
		st, err := migrations.Check(ctx, db.Pool)
		require.NoError(t, err)
		require.True(t, st.Current(), "%+v", st)
		require.Equal(t, 0, db.Count(t, "customers", ""))
		require.Equal(t, 0, db.Count(t, "river_job", ""))
	})
}
