package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/testdb"
	"github.com/ciclohq/ciclo/report"
	"github.com/ciclohq/ciclo/store"
)

// chromiumPath finds Debian's chromium; the test fails, saying what to
// install, without it (.ci/run installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install Debian's chromium package (apt-get install chromium)")
	return ""
}

// TestDashboardInBrowser seeds a history through `ciclo demo --history`,
// opens /dashboard/ in headless Chromium and checks that the funnel on the
// page is `ciclo report --format json`'s, then opens a customer's page.
// Screenshots go to the test's artifact directory (go test -artifacts
// keeps them); their paths are logged.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	db := testdb.New(t)
	rulesFile := filepath.Join("..", "..", "rules.example.yaml")

	stdout, stderr, code := runCLI(t, "demo", "--rules", rulesFile, "--database-url", db.URL, "--api-token", "tok",
		"--outbox-dir", t.TempDir(), "--history", "40", "--history-days", "75")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "history: 40 customers, ")

	stdout, stderr, code = runCLI(t, "report", "--format", "json", "--rules", rulesFile, "--database-url", db.URL)
	require.Equal(t, 0, code, stderr)
	var want report.Lifecycle
	require.NoError(t, json.Unmarshal([]byte(stdout), &want))
	wantFunnel := map[string]int64{}
	var total int64
	for _, s := range want.Funnel {
		wantFunnel[s.Stage] = s.Customers
		total += s.Customers
	}
	require.Equal(t, int64(40), total, "every seeded customer is in a stage")
	// The history went through the rules: sign-ups, buyers, NPS answers.
	var newCustomers, buyers, answers int64
	for _, p := range want.Periods {
		newCustomers, buyers, answers = newCustomers+p.NewCustomers, buyers+p.Repeat.Of, answers+p.NPS.Answers
	}
	require.Equal(t, int64(40), newCustomers)
	require.Positive(t, buyers)
	require.Positive(t, answers)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := app.New(ctx, app.Config{DatabaseURL: db.URL, RulesPath: rulesFile, APIToken: "tok", Addr: "127.0.0.1:0",
		Role: app.RoleAPI, NoWatchRules: true, OutboxDir: t.TempDir()})
	require.NoError(t, err)
	require.NoError(t, a.Start(ctx))
	t.Cleanup(func() { _ = a.Stop(context.Background()) })

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1400, 1000))...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	base := "http://" + a.Addr()
	// The API token as a bearer header, on every request of the tab.
	require.NoError(t, chromedp.Do(browser, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders,
			network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": "Bearer tok"}})
		return err
	}), chromedp.Navigate(base+"/dashboard/"), chromedp.WaitVisible(chromedp.ID("funnel"))))
	title, err := chromedp.Run(browser, chromedp.Title())
	require.NoError(t, err)
	funnel, err := chromedp.Run(browser, chromedp.Evaluate[map[string]int64](`Object.fromEntries(
		[...document.querySelectorAll('#funnel tr[data-stage]')].map(r => [r.dataset.stage, Number(r.querySelector('.n').textContent)]))`))
	require.NoError(t, err)
	shot, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.Equal(t, "Lifecycle · ciclo", title)
	require.Equal(t, wantFunnel, funnel, "the page's funnel is ciclo report's")
	dir := t.ArtifactDir()
	path := filepath.Join(dir, "dashboard.png")
	require.NoError(t, os.WriteFile(path, shot, 0o644))
	t.Logf("dashboard screenshot: %s", path)

	// A customer page shows the customer's whole timeline.
	entries, err := store.New(db.Pool).Timeline(ctx, "cust-00001", 500)
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(browser, chromedp.Navigate(base+"/dashboard/customers/cust-00001"),
		chromedp.WaitVisible(chromedp.ID("timeline"))))
	rows, err := chromedp.Run(browser, chromedp.Evaluate[int](`document.querySelectorAll('#timeline tr').length - 1`))
	require.NoError(t, err)
	shot, err = chromedp.Run(browser, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.Equal(t, len(entries), rows)
	path = filepath.Join(dir, "customer.png")
	require.NoError(t, os.WriteFile(path, shot, 0o644))
	t.Logf("customer page screenshot: %s (%d timeline entries)", path, rows)
}
