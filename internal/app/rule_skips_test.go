package app_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/store"
	"github.com/ciclohq/ciclo/worker"
)

// skipRules has a rule that reads score unguarded (rules check warns) and
// one that does not read it.
const skipRules = `version: 1
stages: [reach, loyalty, surveyed]
rules:
  - name: promoter
    on: nps_answered
    when: event.properties.score >= 9
    actions:
      - stage: loyalty
  - name: surveyed
    on: nps_answered
    actions:
      - stage: surveyed
`

// TestRuleSkips: a rule whose condition fails at run time is skipped, the
// other rules still run, and the skip is recorded (ciclo customer reads it)
// and counted in ciclo_rule_errors_total.
func TestRuleSkips(t *testing.T) {
	t.Parallel()

	db := testdb.New(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	require.NoError(t, os.WriteFile(path, []byte(skipRules), 0o644))
	ctx := context.Background()
	a, err := app.New(ctx, app.Config{
		DatabaseURL: db.URL, RulesPath: path, APIToken: token, Addr: "127.0.0.1:0",
		OutboxDir: filepath.Join(dir, "outbox"), Migrate: true, NoWatchRules: true,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError})),
		Worker: worker.Config{Schema: db.Schema},
	})
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { require.NoError(t, a.Stop(context.Background())) })
	url := "http://" + a.Addr()

	status, body := post(t, url, token, `[{"customer_id":"s-1","type":"nps_answered","properties":{"score":"ten"}},
		{"customer_id":"s-2","type":"nps_answered","properties":{}},
		{"customer_id":"s-3","type":"nps_answered","properties":{"score":10}}]`)
	require.Equal(t, http.StatusAccepted, status, body)
	waitJobs(t, db)

	// The other rule ran for everyone; promoter only where it could.
	require.Equal(t, 3, db.Count(t, "rule_firings", "rule = 'surveyed'"))
	require.Equal(t, 1, db.Count(t, "rule_firings", "rule = 'promoter' AND customer_id = 's-3'"))
	require.Equal(t, 1, db.Count(t, "rule_skips", "rule = 'promoter' AND customer_id = 's-1' AND error LIKE '%string >= int%' AND event_id IS NOT NULL"))
	require.Equal(t, 1, db.Count(t, "rule_skips", "rule = 'promoter' AND customer_id = 's-2' AND error LIKE '%<nil> >= int%'"))
	require.Equal(t, 2, db.Count(t, "rule_skips", "rule_set_version = $1", a.Rules.Load().Version))

	entries, err := store.New(db.Pool).Timeline(ctx, "s-1", 50)
	require.NoError(t, err)
	var skip *store.TimelineEntry
	for _, e := range entries {
		if e.Kind == store.TimelineSkip {
			skip = e
		}
	}
	require.NotNil(t, skip, "the skip is in the customer's timeline")
	require.Equal(t, "promoter", skip.Rule)
	require.WithinDuration(t, time.Now(), skip.At, time.Minute)
	require.True(t, strings.HasPrefix(skip.Detail["error"].(string), `rule "promoter": invalid operation: string >= int`), skip.Detail["error"])

	_, _, metrics := get(t, url+"/metrics", "Authorization", "Bearer "+token)
	require.Equal(t, 2.0, metricValue(t, metrics, `ciclo_rule_errors_total{rule="promoter"}`))
	require.Equal(t, 0.0, metricValue(t, metrics, `ciclo_rule_errors_total{rule="surveyed"}`))
}
