package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/worker"
)

func TestApplyConfigFile(t *testing.T) {
	// Not parallel: it sets environment variables.
	write := func(t *testing.T, yaml string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "ciclo.yaml")
		require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
		return path
	}
	// parse registers serve's flags (reading the environment, as at start),
	// parses args and applies the file.
	parse := func(t *testing.T, path string, args ...string) (*flags, error) {
		t.Helper()
		var f flags
		cmd := &cobra.Command{Use: "serve"}
		f.register(cmd, "rules.yaml")
		require.NoError(t, cmd.Flags().Parse(args))
		return &f, applyConfigFile(cmd.Flags(), path)
	}

	t.Run("FlagsBeatEnvBeatFileBeatDefaults", func(t *testing.T) {
		t.Setenv("CICLO_EMAIL_WORKERS", "7")
		path := write(t, `
addr: ":9999"
role: worker
email-workers: 3
evaluate-workers: 4
job-retention: 2h
shutdown-timeout: 45s
rescue-after: 20m
webhook-allow-host: [a.example, b.example:8443]
webhook-allow-private: true
`)
		f, err := parse(t, path, "--evaluate-workers", "9")
		require.NoError(t, err)
		require.Equal(t, ":9999", f.addr)                 // file
		require.Equal(t, "worker", f.ops.role)            // file
		require.Equal(t, 7, f.ops.emailWorkers)           // env beats file
		require.Equal(t, 9, f.ops.evaluateWorkers)        // flag beats file
		require.Equal(t, 10, f.ops.webhookWorkers)        // default
		require.Equal(t, 2*time.Hour, f.ops.jobRetention) // file
		require.Equal(t, 45*time.Second, f.ops.shutdownTimeout)
		require.Equal(t, 20*time.Minute, f.ops.rescueAfter) // file
		require.Equal(t, []string{"a.example", "b.example:8443"}, f.webhookAllowHosts)
		require.True(t, f.webhookAllowPrivate)
	})

	t.Run("UnknownKeyIsAnError", func(t *testing.T) {
		_, err := parse(t, write(t, "email_workers: 3\n"))
		require.ErrorContains(t, err, `unknown key "email_workers"`)
	})

	t.Run("BadValueNamesTheKey", func(t *testing.T) {
		_, err := parse(t, write(t, "job-retention: soon\n"))
		require.ErrorContains(t, err, `key "job-retention"`)
	})

	t.Run("RescueAfter", func(t *testing.T) {
		f, err := parse(t, "")
		require.NoError(t, err)
		require.Equal(t, worker.RescueAfterDefault, f.ops.rescueAfter)
		require.Equal(t, 11*time.Minute, f.ops.rescueAfter, "just above the longest job timeout, not River's hour")

		t.Setenv("CICLO_RESCUE_AFTER", "15m")
		f, err = parse(t, write(t, "rescue-after: 30m\n"))
		require.NoError(t, err)
		require.NoError(t, f.ops.validate())
		var cfg app.Config
		f.ops.apply(&cfg)
		require.Equal(t, 15*time.Minute, cfg.Worker.RescueAfter, "the environment beats the file and reaches the worker config")

		f, err = parse(t, "", "--rescue-after", "12m")
		require.NoError(t, err)
		f.ops.apply(&cfg)
		require.Equal(t, 12*time.Minute, cfg.Worker.RescueAfter)

		f, err = parse(t, "", "--rescue-after", "2m")
		require.NoError(t, err)
		err = f.ops.validate()
		require.ErrorContains(t, err, "--rescue-after 2m0s (CICLO_RESCUE_AFTER): must be longer than 10m0s, the longest a job that sends may run")

		// A short rescue needs a short job timeout (the reliability suite's setting).
		t.Setenv("CICLO_JOB_TIMEOUT", "5s")
		f, err = parse(t, "", "--rescue-after", "6s")
		require.NoError(t, err)
		require.NoError(t, f.ops.validate())
		f.ops.apply(&cfg)
		require.Equal(t, 5*time.Second, cfg.Worker.BatchTimeout)
		f, err = parse(t, "", "--rescue-after", "5s")
		require.NoError(t, err)
		require.ErrorContains(t, f.ops.validate(), "--rescue-after 5s (CICLO_RESCUE_AFTER): must be longer than 5s")
		t.Setenv("CICLO_JOB_TIMEOUT", "")
		f, err = parse(t, write(t, "job-timeout: 500ms\nrescue-after: 6s\n"))
		require.NoError(t, err)
		require.ErrorContains(t, f.ops.validate(), "--job-timeout 500ms (CICLO_JOB_TIMEOUT): must be at least 1s")
	})

	t.Run("BadEnvironmentValueIsAnError", func(t *testing.T) {
		t.Setenv("CICLO_SHUTDOWN_TIMEOUT", "thirty")
		f, err := parse(t, "")
		require.NoError(t, err)
		require.ErrorContains(t, f.ops.validate(), `CICLO_SHUTDOWN_TIMEOUT="thirty"`)
	})
}
