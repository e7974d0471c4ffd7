package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/server"
	"github.com/ciclohq/ciclo/worker"
)

// parseConfig registers serve's settings (or demo's), parses args and
// resolves them over environ (NAME=value) and, if yaml is not "", a config
// file holding it named by --config.
func parseConfig(t *testing.T, demo bool, environ []string, yaml string, args ...string) (*flags, error) {
	t.Helper()
	if yaml != "" {
		path := filepath.Join(t.TempDir(), "ciclo.yaml")
		require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
		args = append(args, "--config", path)
	}
	f := &flags{}
	cmd := &cobra.Command{Use: "serve"}
	var defaults map[string]string
	if demo {
		f.db.demo = true
		defaults = map[string]string{"rules": "rules.example.yaml", "addr": "127.0.0.1:0"}
	}
	f.register(cmd, defaults)
	f.conf.environ = func() []string { return environ }
	if err := cmd.Flags().Parse(args); err != nil {
		return f, err
	}
	return f, f.resolve(cmd)
}

func TestConfigPrecedence(t *testing.T) {
	t.Parallel()
	file := `
addr: ":9999"
role: worker
email-workers: 3
evaluate-workers: 4
job-retention: 2h
shutdown-timeout: 45s
webhook-allow-host: [a.example, b.example:8443]
webhook-allow-private: true
database-url: postgres://file/db
`
	env := []string{"CICLO_EMAIL_WORKERS=7", "CICLO_ROLE=api", "CICLO_SHUTDOWN_TIMEOUT=", "DATABASE_URL=postgres://env/db", "CICLO_UNRELATED=x"}
	f, err := parseConfig(t, false, env, file, "--evaluate-workers", "9", "--role", "all")
	require.NoError(t, err)
	c := f.cfg
	for _, tc := range []struct {
		name      string
		got, want any
		from      string // f.conf.from of the key
	}{
		{"addr", c.Addr, ":9999", "from config file"},
		{"role", c.Role, "all", "from --role"}, // flag beats env beats file
		{"email-workers", c.Worker.EmailWorkers, 7, "from CICLO_EMAIL_WORKERS"},
		{"evaluate-workers", c.Worker.EvaluateWorkers, 9, "from --evaluate-workers"},
		{"webhook-workers", c.Worker.WebhookWorkers, worker.WebhookWorkersDefault, "the default"},
		{"job-retention", c.Worker.JobRetention, 2 * time.Hour, "from config file"},
		{"shutdown-timeout", c.ShutdownTimeout, 45 * time.Second, "from config file"}, // an empty variable is unset
		{"rescue-after", c.Worker.RescueAfter, worker.RescueAfterDefault, "the default"},
		{"points-expiry-interval", c.Worker.PointsExpiryInterval, worker.PointsExpiryIntervalDefault, "the default"},
		{"tier-sweep-interval", c.Worker.TierSweepInterval, worker.TierSweepIntervalDefault, "the default"},
		{"report-fold-interval", c.Worker.ReportFoldInterval, worker.ReportFoldIntervalDefault, "the default"},
		{"request-timeout", c.HTTP.RequestTimeout, server.RequestTimeoutDefault, "the default"},
		{"http-max-connections", c.HTTP.MaxConnections, server.MaxConnectionsDefault, "the default"},
		{"webhook-allow-host", c.WebhookAllowHosts, []string{"a.example", "b.example:8443"}, "from config file"},
		{"webhook-allow-private", c.WebhookAllowPrivate, true, "from config file"},
		{"database-url", f.db.url, "postgres://env/db", "from DATABASE_URL"},
		{"rules", c.RulesPath, "rules.yaml", "the default"},
	} {
		require.Equal(t, tc.want, tc.got, tc.name)
		require.True(t, strings.HasPrefix(f.conf.from(tc.name), tc.from), "%s: %s", tc.name, f.conf.from(tc.name))
	}
	require.False(t, f.conf.isSet("data-dir"))

	// The config file named by the environment; the demo's own defaults.
	path := filepath.Join(t.TempDir(), "demo.yaml")
	require.NoError(t, os.WriteFile(path, []byte("from: Shop <a@shop.example>\n"), 0o600))
	f, err = parseConfig(t, true, []string{"CICLO_CONFIG=" + path}, "")
	require.NoError(t, err)
	require.Equal(t, "Shop <a@shop.example>", f.cfg.From)
	require.Equal(t, "rules.example.yaml", f.cfg.RulesPath)
	require.Equal(t, "127.0.0.1:0", f.cfg.Addr)
	f, err = parseConfig(t, true, []string{"CICLO_ADDR=:7000"}, "addr: \":6000\"\n")
	require.NoError(t, err)
	require.Equal(t, ":7000", f.cfg.Addr, "the demo's addr default yields to the environment")

	// A repeated list flag adds; a list variable is comma-separated.
	f, err = parseConfig(t, false, []string{"CICLO_WEBHOOK_ALLOW_HOSTS=x.example, y.example"}, "")
	require.NoError(t, err)
	require.Equal(t, []string{"x.example", "y.example"}, f.cfg.WebhookAllowHosts)
	f, err = parseConfig(t, false, []string{"CICLO_WEBHOOK_ALLOW_HOSTS=x.example"}, "", "--webhook-allow-host", "a,b", "--webhook-allow-host", "c")
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c"}, f.cfg.WebhookAllowHosts)

	// Naming the data folder anywhere makes serve use only it.
	f, err = parseConfig(t, false, nil, "data-dir: /srv/ciclo\n")
	require.NoError(t, err)
	require.Equal(t, "/srv/ciclo", f.db.dataDir)
	require.True(t, f.conf.isSet("data-dir"))
}

func TestConfigBooleans(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value string
		want  bool
	}{
		{"1", true}, {"true", true}, {"TRUE", true}, {"True", true}, {"yes", true}, {"Yes", true}, {"on", true}, {"ON", true},
		{"0", false}, {"false", false}, {"FALSE", false}, {"no", false}, {"NO", false}, {"off", false}, {"Off", false},
	} {
		t.Run(tc.value, func(t *testing.T) {
			t.Parallel()
			f, err := parseConfig(t, false, []string{"CICLO_WEBHOOK_ALLOW_PRIVATE=" + tc.value, "CICLO_NO_MIGRATE=" + tc.value}, "")
			require.NoError(t, err)
			require.Equal(t, tc.want, f.cfg.WebhookAllowPrivate, "environment")
			require.Equal(t, tc.want, f.noMigrate, "environment")

			f, err = parseConfig(t, false, nil, "webhook-allow-private: "+tc.value+"\nno-migrate: "+tc.value+"\n")
			require.NoError(t, err)
			require.Equal(t, tc.want, f.cfg.WebhookAllowPrivate, "file")
			require.Equal(t, tc.want, f.noMigrate, "file")

			f, err = parseConfig(t, false, nil, "", "--webhook-allow-private="+tc.value)
			require.NoError(t, err)
			require.Equal(t, tc.want, f.cfg.WebhookAllowPrivate, "flag")
		})
	}
	t.Run("FlagAloneIsTrueAndBeatsEnv", func(t *testing.T) {
		t.Parallel()
		f, err := parseConfig(t, false, []string{"CICLO_WEBHOOK_ALLOW_PRIVATE=no"}, "", "--webhook-allow-private")
		require.NoError(t, err)
		require.True(t, f.cfg.WebhookAllowPrivate)
		f, err = parseConfig(t, false, []string{"CICLO_WEBHOOK_ALLOW_PRIVATE=no"}, "webhook-allow-private: yes\n")
		require.NoError(t, err)
		require.False(t, f.cfg.WebhookAllowPrivate, "the environment beats the file")
	})
	t.Run("Bad", func(t *testing.T) {
		t.Parallel()
		_, err := parseConfig(t, false, []string{"CICLO_WEBHOOK_ALLOW_PRIVATE=maybe"}, "")
		require.EqualError(t, err, `CICLO_WEBHOOK_ALLOW_PRIVATE="maybe": not a boolean: use true or false (or 1/0, yes/no, on/off)`)
		_, err = parseConfig(t, false, nil, "no-migrate: sometimes\n")
		require.ErrorContains(t, err, `key "no-migrate" (sometimes): not a boolean: use true or false (or 1/0, yes/no, on/off)`)
		_, err = parseConfig(t, false, nil, "", "--no-migrate=perhaps")
		require.EqualError(t, err, `invalid argument "perhaps" for "--no-migrate" flag: not a boolean: use true or false (or 1/0, yes/no, on/off)`)
	})
}

func TestConfigDurations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		environ []string
		file    string
		args    []string
		want    time.Duration // rescue-after
		wantErr string
	}{
		{name: "Default", want: 11 * time.Minute},
		{name: "Env", environ: []string{"CICLO_RESCUE_AFTER=15m"}, want: 15 * time.Minute},
		{name: "File", file: "rescue-after: 1h30m\n", want: 90 * time.Minute},
		{name: "EnvBeatsFile", environ: []string{"CICLO_RESCUE_AFTER=15m"}, file: "rescue-after: 30m\n", want: 15 * time.Minute},
		{name: "FlagBeatsEnv", environ: []string{"CICLO_RESCUE_AFTER=15m"}, args: []string{"--rescue-after", "12m"}, want: 12 * time.Minute},
		{name: "BadEnv", environ: []string{"CICLO_SHUTDOWN_TIMEOUT=thirty"},
			wantErr: `CICLO_SHUTDOWN_TIMEOUT="thirty": not a duration such as 30s or 24h`},
		{name: "BadFile", file: "job-retention: soon\n", wantErr: `: key "job-retention" (soon): not a duration such as 30s or 24h`},
		{name: "NumberInFile", file: "shutdown-timeout: 30\n", wantErr: `key "shutdown-timeout" (30): not a duration such as 30s or 24h`},
		{name: "BadFlag", args: []string{"--job-retention", "1 day"},
			wantErr: `invalid argument "1 day" for "--job-retention" flag: not a duration such as 30s or 24h`},
		{name: "TooShortFromEnv", environ: []string{"CICLO_RESCUE_AFTER=2m"},
			wantErr: "rescue-after 2m0s (from CICLO_RESCUE_AFTER): must be longer than 10m0s, the longest a job that sends may run"},
		{name: "TooShortFromFlag", args: []string{"--rescue-after", "2m"},
			wantErr: "rescue-after 2m0s (from --rescue-after): must be longer than 10m0s"},
		{name: "NotPositiveFromFile", file: "job-retention: 0s\n", wantErr: "job-retention 0s (from config file "},
		{name: "TierSweepTooOften", environ: []string{"CICLO_TIER_SWEEP_INTERVAL=10s"}, wantErr: "tier-sweep-interval 10s (from CICLO_TIER_SWEEP_INTERVAL): must be at least 1m"},
		{name: "ReportFoldZero", environ: []string{"CICLO_REPORT_FOLD_INTERVAL=0s"}, wantErr: "report-fold-interval 0s (from CICLO_REPORT_FOLD_INTERVAL): must be at least 1s"},
		{name: "PointsExpiryZero", args: []string{"--points-expiry-interval", "0s"}, wantErr: "points-expiry-interval 0s (from --points-expiry-interval): must be at least 1s"},
		{name: "WriteTimeoutNotAboveRequest", environ: []string{"CICLO_REQUEST_TIMEOUT=40s"},
			wantErr: "http-write-timeout 30s (the default): must be longer than 40s (--request-timeout)"},
		{name: "RequestTimeoutTooShort", args: []string{"--request-timeout", "5ms"}, wantErr: "request-timeout 5ms (from --request-timeout): must be at least 100ms"},
		{name: "NoConnections", environ: []string{"CICLO_HTTP_MAX_CONNECTIONS=0"}, wantErr: "http-max-connections 0 (from CICLO_HTTP_MAX_CONNECTIONS): must be at least 1"},
		{name: "WorkersFromEnv", environ: []string{"CICLO_SWEEP_WORKERS=0"}, wantErr: "sweep-workers 0 (from CICLO_SWEEP_WORKERS): must be at least 1"},
		{name: "BadInteger", environ: []string{"CICLO_EMAIL_WORKERS=many"}, wantErr: `CICLO_EMAIL_WORKERS="many": not an integer`},
		{name: "RoleFromFile", file: "role: everything\n", wantErr: `role "everything" (from config file `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := parseConfig(t, false, tc.environ, tc.file, tc.args...)
			if err == nil {
				err = f.validate()
			}
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, f.cfg.Worker.RescueAfter)
		})
	}
}

func TestConfigFileKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, wantErr string
	}{
		{"Typo", "email_workers: 3\n", `unknown key "email_workers"; did you mean "email-workers"? (keys are the flag names of ` + "`ciclo serve --help`)"},
		{"EnvName", "smtp_url: smtp://x\n", `unknown key "smtp_url"; did you mean "smtp-url"?`},
		{"Nothing close", "banana: 1\n", `unknown key "banana" (keys are`},
		{"Nested", "smtp:\n  url: smtp://x\n", `unknown key "smtp.url"`},
		{"ConfigInConfig", "config: other.yaml\n", `unknown key "config"`},
		{"ListForScalar", "addr: [a, b]\n", `key "addr" ([a b]): a single value, not a list`},
		{"NotYAML", "addr: [\n", "config file "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig(t, false, nil, tc.file)
			require.ErrorContains(t, err, tc.wantErr)
			require.ErrorContains(t, err, "ciclo.yaml")
		})
	}
	t.Run("AllProblemsAtOnce", func(t *testing.T) {
		t.Parallel()
		_, err := parseConfig(t, false, []string{"CICLO_EMAIL_WORKERS=x"}, "rols: api\nsweep-workers: few\n")
		require.ErrorContains(t, err, `unknown key "rols"; did you mean "role"?`)
		require.ErrorContains(t, err, `key "sweep-workers" (few): not an integer`)
		require.ErrorContains(t, err, `CICLO_EMAIL_WORKERS="x": not an integer`)
	})
	t.Run("MissingFile", func(t *testing.T) {
		t.Parallel()
		_, err := parseConfig(t, false, []string{"CICLO_CONFIG=/nonexistent/ciclo.yaml"}, "")
		require.ErrorContains(t, err, "config file /nonexistent/ciclo.yaml: open /nonexistent/ciclo.yaml: no such file or directory")
	})
	t.Run("EveryFlagIsAKey", func(t *testing.T) {
		t.Parallel()
		// Each setting is one declaration: flag, environment variable and key.
		f, err := parseConfig(t, false, nil, "")
		require.NoError(t, err)
		envs := map[string]bool{}
		for _, st := range f.conf.list {
			require.NotEmpty(t, st.Env, st.Key)
			require.False(t, envs[st.Env], st.Env)
			envs[st.Env] = true
		}
		require.GreaterOrEqual(t, len(f.conf.list), 27)
	})
	t.Run("ThroughTheCommand", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "ciclo.yaml")
		require.NoError(t, os.WriteFile(path, []byte("email_workers: 3\n"), 0o600))
		_, stderr, code := runCLI(t, "serve", "--config", path)
		require.Equal(t, 1, code)
		require.Equal(t, "ciclo: config file "+path+`: unknown key "email_workers"; did you mean "email-workers"? (keys are the flag names of `+"`ciclo serve --help`)\n", stderr)
	})
}

// TestConfigREADME checks that the README's configuration table lists every
// setting of serve with its environment variable and flag.
func TestConfigREADME(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	f, err := parseConfig(t, false, nil, "")
	require.NoError(t, err)
	for _, st := range f.conf.list {
		require.Contains(t, string(readme), "`"+st.Env+"`", "README configuration table: %s", st.Key)
		require.Contains(t, string(readme), "`--"+st.Key+"`", "README configuration table: %s", st.Key)
	}
}
