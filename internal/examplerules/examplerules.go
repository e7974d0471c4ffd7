// Package examplerules gives tests the module's rules.example.yaml with
// quiet hours that never hold their email.
//
// rules.example.yaml sets defaults.quiet_hours "21:00-08:00": marketing
// email to a customer whose local time (UTC when the customer has no time
// zone) is in that window waits until 08:00. Tests that run the example with
// the real clock and only need email to flow would therefore fail whenever
// they run between 21:00 and 08:00 UTC, and CI runs at any hour. Path gives
// them a copy whose quiet-hours window is one minute about 12 hours away
// from the current UTC time: quiet hours stay configured, so the dispatch
// code checks them as in production, but during a test that lasts less than
// an hour the window never contains the local time of a customer in UTC (or
// in any zone less than 11 hours from it). Tests of quiet hours themselves
// set their own window and a settable clock (internal/app/channels_test.go).
package examplerules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/ciclohq/ciclo/rules"
)

// FileName is the example rules file at the module root.
const FileName = "rules.example.yaml"

// quietHoursLine is the example's defaults.quiet_hours line; the value is
// the second group.
var quietHoursLine = regexp.MustCompile(`(?m)^([ \t]*quiet_hours:[ \t]*)(\S.*?)[ \t]*$`)

// Path writes a copy of the module's rules.example.yaml into t.TempDir()
// with its quiet hours moved to a one-minute window about 12 hours from
// now (UTC) and returns the copy's path. Everything else in the file is
// unchanged. It fails the test if the example has no quiet_hours line (then
// this helper, and the tests using it, need a second look).
func Path(t testing.TB) string {
	t.Helper()
	return WithQuietHours(t, Window(time.Now()))
}

// WithQuietHours is Path with the given quiet-hours window ("HH:MM-HH:MM"),
// for tests that need quiet hours to hold their email.
func WithQuietHours(t testing.TB, window string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("examplerules: %v", err)
	}
	src := filepath.Join(root, FileName)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("examplerules: %v", err)
	}
	out, err := rewrite(src, data, window)
	if err != nil {
		t.Fatalf("examplerules: %v", err)
	}
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatalf("examplerules: %v", err)
	}
	return path
}

// Window is the quiet-hours window Path writes for a test starting at now:
// the minute about 12 hours after now in UTC, as "HH:MM-HH:MM".
func Window(now time.Time) string {
	start := now.UTC().Add(12 * time.Hour).Truncate(time.Minute)
	end := start.Add(time.Minute)
	return start.Format("15:04") + "-" + end.Format("15:04")
}

// rewrite replaces the quiet_hours value of the rules file src (contents
// data) with window and checks that the result parses with those quiet hours.
func rewrite(src string, data []byte, window string) ([]byte, error) {
	matches := quietHoursLine.FindAllSubmatchIndex(data, -1)
	switch {
	case len(matches) == 0:
		return nil, fmt.Errorf("%s has no quiet_hours line any more; tests copy it with quiet hours away from the clock, update internal/examplerules", src)
	case len(matches) > 1:
		return nil, fmt.Errorf("%s has %d quiet_hours lines; internal/examplerules expects one", src, len(matches))
	}
	m := matches[0]
	out := make([]byte, 0, len(data)+16)
	out = append(out, data[:m[4]]...)
	out = append(out, fmt.Sprintf("%q", window)...)
	out = append(out, data[m[5]:]...)

	rs, err := rules.Parse(src, out, rules.ParseOptions{LookupEnv: os.LookupEnv})
	if err != nil {
		return nil, fmt.Errorf("%s with quiet_hours %q: %w", src, window, err)
	}
	if rs.Defaults.QuietHours == nil || rs.Defaults.QuietHours.String() != window {
		return nil, fmt.Errorf("%s: rewriting its quiet_hours line did not set defaults.quiet_hours to %q", src, window)
	}
	if rs.TemplateDir != "" && !filepath.IsAbs(rs.TemplateDir) {
		return nil, fmt.Errorf("%s names templates_dir %q relative to itself; a copy in a temporary folder would not find it", src, rs.TemplateDir)
	}
	return out, nil
}

// moduleRoot walks up from the working directory (a test's package folder)
// to the folder holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
