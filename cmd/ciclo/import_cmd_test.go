package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
)

// TestImportCmd runs `ciclo import` on a real schema: good rows land, bad
// rows are listed with their line, a re-run changes nothing, nothing fires
// unless --trigger.
func TestImportCmd(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	dir := t.TempDir()
	rulesFile := filepath.Join("..", "..", "rules.example.yaml")
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	customers := write("customers.csv", "id,email,name,accepts_marketing,plan\n"+
		"c-1,ana@example.com,Ana,true,gold\n"+
		"c-2,not-an-email,Bo,false,\n"+
		"c-3,cy@example.com,Cy,false,silver\n")
	orders := write("orders.csv", "customer_id,order_id,total,currency,ordered_at,status\n"+
		"c-1,o-1,19.99,EUR,2025-01-10T10:00:00Z,completed\n"+
		"c-1,o-2,5.01,EUR,2025-02-10T10:00:00Z,\n"+
		"c-3,o-3,12.5.0,EUR,2025-02-10T10:00:00Z,\n"+
		"c-3,o-4,1500,JPY,2025-03-01T10:00:00Z,cancelled\n")
	run := func(t *testing.T, args ...string) (string, string, int) {
		t.Helper()
		return runCLI(t, append(args, "--database-url", db.URL, "--rules", rulesFile)...)
	}

	t.Run("Customers", func(t *testing.T) {
		stdout, stderr, code := run(t, "import", "customers", customers)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stderr, customers+": line 3: email:")
		require.Contains(t, stderr, "import: 100%")
		require.Contains(t, stdout, "3 rows read, 2 good, 1 bad; 2 created, 0 updated, 0 unchanged")
		require.Equal(t, 1, db.Count(t, "customers", "id = 'c-3' AND attributes->>'accepts_email_marketing' = 'false' AND attributes->>'plan' = 'silver'"))

		stdout, _, code = run(t, "import", "customers", customers)
		require.Equal(t, 0, code)
		require.Contains(t, stdout, "0 created, 0 updated, 2 unchanged", "a re-run changes nothing")
	})

	t.Run("Orders", func(t *testing.T) {
		stdout, stderr, code := run(t, "import", "orders", orders)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stderr, orders+": line 4: total:")
		require.Contains(t, stdout, "4 rows read, 3 good, 1 bad; 3 new orders")
		require.Contains(t, stdout, "no rule fired and nothing was sent")
		require.Equal(t, 1, db.Count(t, "customers", "id = 'c-1' AND orders_count = 2 AND total_spent_cents = 2500 AND last_order_at = '2025-02-10T10:00:00Z'"))
		require.Equal(t, 1, db.Count(t, "customers", "id = 'c-3' AND orders_count = 0"), "a cancelled order is not counted")
		require.Zero(t, db.Count(t, "river_job", "true"), "nothing enqueued")
		require.Zero(t, db.Count(t, "deliveries", "true"))

		stdout, _, code = run(t, "import", "orders", orders)
		require.Equal(t, 0, code)
		require.Contains(t, stdout, "0 new orders, 3 already imported")
		require.Equal(t, 1, db.Count(t, "customers", "id = 'c-1' AND orders_count = 2 AND total_spent_cents = 2500"))
	})

	t.Run("StrictStopsAtTheFirstBadRow", func(t *testing.T) {
		f := write("strict.csv", "customer_id,order_id,total,currency,ordered_at\n"+
			"s-1,so-1,10,EUR,2025-01-10T10:00:00Z\n"+
			"s-1,so-2,x,EUR,2025-01-10T10:00:00Z\n"+
			"s-1,so-3,10,EUR,2025-01-10T10:00:00Z\n")
		_, stderr, code := run(t, "import", "orders", f, "--strict")
		require.Equal(t, 1, code)
		require.Contains(t, stderr, "line 3: total:")
		require.Contains(t, stderr, "--strict")
		require.Equal(t, 1, db.Count(t, "events", "customer_id = 's-1'"), "the rows before the bad one landed, none after")
	})

	t.Run("TriggerFiresOrderRules", func(t *testing.T) {
		f := write("trigger.csv", "customer_id,order_id,total,currency,ordered_at\n"+
			"t-1,to-1,10,EUR,2025-01-10T10:00:00Z\n")
		stdout, stderr, code := run(t, "import", "orders", f, "--trigger")
		require.Equal(t, 0, code, stderr)
		require.Contains(t, stdout, "1 new orders")
		require.Equal(t, 1, db.Count(t, "river_job", "kind = 'ciclo.evaluate' AND args->>'customer_id' = 't-1'"), "evaluation enqueued")
		require.Equal(t, 1, db.Count(t, "customers", "id = 't-1' AND orders_count = 1 AND total_spent_cents = 1000"))
	})

	t.Run("BadKind", func(t *testing.T) {
		_, stderr, code := run(t, "import", "products", customers)
		require.Equal(t, 1, code)
		require.True(t, strings.Contains(stderr, "ciclo import customers FILE.csv"), stderr)
	})
}

// TestImportCmdReadsDatabaseURL imports with the database named only in the
// environment: the rows land there, not in the default database (import
// once ignored DATABASE_URL and wrote to the local server's "ciclo").
func TestImportCmdReadsDatabaseURL(t *testing.T) {
	db := testdb.New(t)
	p := filepath.Join(t.TempDir(), "customers.csv")
	require.NoError(t, os.WriteFile(p, []byte("id,email\nenv-1,env@example.com\n"), 0o644))
	t.Setenv("DATABASE_URL", db.URL)
	_, stderr, code := runCLI(t, "import", "customers", p, "--rules", filepath.Join("..", "..", "rules.example.yaml"))
	require.Equal(t, 0, code, stderr)
	require.Equal(t, 1, db.Count(t, "customers", "id = 'env-1'"))
}
