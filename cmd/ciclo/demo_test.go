package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/testdb"
)

// TestDemo runs the README's first command against a test schema: the
// first order moves the customer to conversion, issues a coupon and writes
// the email to the outbox.
func TestDemo(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	outbox := filepath.Join(t.TempDir(), "outbox")

	stdout, stderr, code := runCLI(t, "demo", "--rules", "../../rules.example.yaml",
		"--database-url", db.URL, "--outbox-dir", outbox, "--api-token", "demo-token")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "→ 202 Accepted")
	require.Contains(t, stdout, `stage:  reach → conversion by rule "first-order-bonus"`)
	require.Contains(t, stdout, "coupon: ")
	require.Contains(t, stdout, "email:  sent, written to "+outbox)

	files, err := os.ReadDir(outbox)
	require.NoError(t, err)
	require.Len(t, files, 1)
	require.Equal(t, 1, db.Count(t, "stage_transitions", "to_stage = 'conversion' AND rule = 'first-order-bonus'"))
	require.Equal(t, 1, db.Count(t, "coupons", "rule = 'first-order-bonus' AND expires_at > now() + interval '13 days'"))
}
