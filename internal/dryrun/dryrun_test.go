package dryrun_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/dryrun"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
)

func TestReadOnly(t *testing.T) {
	t.Parallel()

	db := testdb.New(t)
	ctx := context.Background()

	t.Run("WritesFail", func(t *testing.T) {
		err := dryrun.ReadOnly(ctx, db.Pool, func(st *store.Store) error {
			return st.AddSuppression(ctx, "a@example.com", store.SuppressBounced, "test", testTime)
		})
		require.ErrorContains(t, err, "read-only transaction")
		require.Equal(t, 0, db.Count(t, "suppressions", ""))
	})

	t.Run("UnknownCustomer", func(t *testing.T) {
		err := dryrun.ReadOnly(ctx, db.Pool, func(st *store.Store) error {
			_, err := st.GetCustomer(ctx, "nobody")
			return err
		})
		require.ErrorIs(t, err, store.ErrCustomerNotFound)
	})
}

var testTime = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
