package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/check/golden/*.txt from the current output")

// runCLI runs the ciclo command line like main does and returns its output
// and exit code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		code = 1
		if !errors.Is(err, errSilent) {
			fmt.Fprintln(&errOut, "ciclo:", err)
		}
	}
	return out.String(), errOut.String(), code
}

// TestRulesCheck runs `ciclo rules check` on every file of the broken-file
// corpus (rules/testdata/check, plus the template cases in
// testdata/check) and compares the exact output and exit code with
// testdata/check/golden/NAME.txt. Regenerate with
// go test ./cmd/ciclo -run TestRulesCheck -update.
func TestRulesCheck(t *testing.T) {
	t.Parallel()

	corpus, err := filepath.Glob(filepath.Join("..", "..", "rules", "testdata", "check", "*.yaml"))
	require.NoError(t, err)
	local, err := filepath.Glob(filepath.Join("testdata", "check", "*.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(corpus), 25)
	require.NotEmpty(t, local)

	t.Run("Golden", func(t *testing.T) {
		t.Parallel()
		for _, path := range append(corpus, local...) {
			name := strings.TrimSuffix(filepath.Base(path), ".yaml")
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				stdout, stderr, code := runCLI(t, "rules", "check", filepath.ToSlash(path))
				require.Empty(t, stderr)
				got := fmt.Sprintf("%sexit %d\n", stdout, code)
				golden := filepath.Join("testdata", "check", "golden", name+".txt")
				if *update {
					require.NoError(t, os.MkdirAll(filepath.Dir(golden), 0o755))
					require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
					return
				}
				want, err := os.ReadFile(golden)
				require.NoError(t, err)
				require.Equal(t, string(want), got)
				// The CLI reports at least what the pure parser reports.
				if pure, err := os.ReadFile(strings.TrimSuffix(path, ".yaml") + ".golden"); err == nil {
					for _, line := range strings.Split(strings.TrimSpace(string(pure)), "\n") {
						require.Contains(t, stdout, "../../rules/"+line+"\n")
					}
				}
				// Errors fail the check; warnings alone do not.
				wantCode := 0
				if strings.Contains(stdout, " error(s), ") {
					wantCode = 1
				}
				require.Equal(t, wantCode, code)
			})
		}
	})

	t.Run("ExampleFilePasses", func(t *testing.T) {
		t.Parallel()
		stdout, _, code := runCLI(t, "rules", "check", filepath.Join("..", "..", "rules.example.yaml"))
		require.Equal(t, "ok: 1 file(s), 0 warning(s)\n", stdout)
		require.Equal(t, 0, code)
	})

	t.Run("SeveralFilesAllReported", func(t *testing.T) {
		t.Parallel()
		stdout, _, code := runCLI(t, "rules", "check",
			"testdata/check/warnings_only.yaml", "../../rules/testdata/check/unknown_field.yaml")
		require.Equal(t, 1, code)
		require.Equal(t, `testdata/check/warnings_only.yaml:2:26: warning: stage "churned" is unreachable: no rule moves customers into it (add a rule with a "stage: churned" action or remove the stage)
testdata/check/warnings_only.yaml:4:5: warning: rule "at-risk": scheduled rule has no cooldown: it would fire on every tick for every matching customer (add e.g. "cooldown: 30d")
../../rules/testdata/check/unknown_field.yaml:5:20: rule "first-order": when: customer has no field "order_count" (did you mean "orders_count"?)
1 error(s), 2 warning(s)
`, stdout)
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		stdout, _, code := runCLI(t, "rules", "check", "--format", "json", "testdata/check/template_needs_coupon.yaml")
		require.Equal(t, 1, code)
		var got []checkFinding
		require.NoError(t, json.Unmarshal([]byte(stdout), &got))
		require.Equal(t, []checkFinding{{
			File: "testdata/check/template_needs_coupon.yaml", Line: 8, Column: 28, Rule: "first-order", Severity: "error",
			Message: `template "first_order_bonus" shows a coupon but the rule issues none`,
			Hint:    "add a coupon action before the email, or use another template",
		}}, got)
	})

	t.Run("AllowMissingEnv", func(t *testing.T) {
		t.Parallel()
		stdout, _, code := runCLI(t, "rules", "check", "--allow-missing-env", "testdata/check/webhook_env.yaml")
		require.Equal(t, 0, code)
		require.Equal(t, `testdata/check/webhook_env.yaml:8:16: warning: rule "crm": webhook url: environment variable CICLO_TEST_UNSET_WEBHOOK_URL is not set here, so the value is not checked (set it where ciclo runs; ciclo serve refuses the file without it)
testdata/check/webhook_env.yaml:9:19: warning: rule "crm": webhook secret: environment variable CICLO_TEST_UNSET_SECRET is not set here, so the value is not checked (set it where ciclo runs; ciclo serve refuses the file without it)
ok: 1 file(s), 2 warning(s)
`, stdout)
		require.NotContains(t, stdout, "secret ${", "a URL is not called a secret")
	})

	t.Run("MissingFile", func(t *testing.T) {
		t.Parallel()
		stdout, _, code := runCLI(t, "rules", "check", "testdata/check/nope.yaml")
		require.Equal(t, 1, code)
		require.Equal(t, "testdata/check/nope.yaml: rules file \"testdata/check/nope.yaml\" not found: file does not exist\n1 error(s), 0 warning(s)\n", stdout)
	})
}
