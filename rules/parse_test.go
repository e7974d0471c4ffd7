package rules

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/check/*.golden from the current output")

// testEnv is a fixed LookupEnv for tests.
func testEnv(name string) (string, bool) {
	v, ok := map[string]string{
		"CRM_WEBHOOK_URL":    "https://crm.example.com/hooks/ciclo",
		"CRM_WEBHOOK_SECRET": "s3cret",
		"NOT_A_URL":          "ftp://files.example.com",
	}[name]
	return v, ok
}

var testTemplates = []string{"welcome", "first_order_bonus", "win_back", "thank_you"}

func testOpts() ParseOptions {
	return ParseOptions{LookupEnv: testEnv, Templates: testTemplates}
}

// checkOutput is what `ciclo rules check` would print for data: the errors,
// or the warnings of a file that loads.
func checkOutput(t *testing.T, name string, data []byte) string {
	t.Helper()
	rs, err := Parse(name, data, testOpts())
	if err != nil {
		var les *LoadErrors
		require.ErrorAs(t, err, &les)
		return err.Error() + "\n"
	}
	var b strings.Builder
	for _, w := range rs.Warnings {
		b.WriteString(w.Error() + "\n")
	}
	return b.String()
}

func TestParseErrors(t *testing.T) {
	t.Parallel()

	const head = "version: 1\nrules:\n"
	const ok = "    on: signed_up\n    actions:\n      - stage: acquisition\n"

	tests := []struct {
		name string
		yaml string
		opts *ParseOptions
		want []string
	}{
		{
			name: "UnknownTopLevelKey",
			yaml: "version: 1\nrulez: []\n",
			want: []string{
				`r.yaml:1:1: missing rules`,
				`r.yaml:2:1: unknown top-level key "rulez" (did you mean "rules"?)`,
			},
		},
		{
			name: "UnknownRuleKey",
			yaml: head + "  - name: a\n    wehn: customer.orders_count > 1\n" + ok,
			want: []string{`r.yaml:4:5: rule "a": unknown key "wehn" (did you mean "when"?)`},
		},
		{
			name: "UnknownRuleKeyNoSuggestion",
			yaml: head + "  - name: a\n    banana: 1\n" + ok,
			want: []string{`r.yaml:4:5: rule "a": unknown key "banana" (valid keys: name, on, schedule, timezone, when, cooldown, transactional, frequency_cap, holdout, actions, key, exit, reentry)`},
		},
		{
			name: "UnknownCustomerField",
			yaml: head + "  - name: a\n    when: customer.ordrs_count > 1\n" + ok,
			want: []string{`r.yaml:4:20: rule "a": when: customer has no field "ordrs_count" (did you mean "orders_count"?)`},
		},
		{
			name: "UnknownEventField",
			yaml: head + "  - name: a\n    when: 'event.tpye == \"x\"'\n" + ok,
			want: []string{`r.yaml:4:18: rule "a": when: event has no field "tpye" (did you mean "type"?)`},
		},
		{
			name: "UnknownName",
			yaml: head + "  - name: a\n    when: custmer.stage == \"x\"\n" + ok,
			want: []string{`r.yaml:4:11: rule "a": when: unknown name "custmer" (did you mean "customer"?)`},
		},
		{
			name: "BareCustomerField",
			yaml: head + "  - name: a\n    when: orders_count > 1\n" + ok,
			want: []string{`r.yaml:4:11: rule "a": when: unknown name "orders_count" (did you mean "customer.orders_count"?)`},
		},
		{
			name: "UnknownFunction",
			yaml: head + "  - name: a\n    when: day_since(customer.last_order_at) > 1\n" + ok,
			want: []string{`r.yaml:4:11: rule "a": when: unknown name "day_since" (did you mean "days_since"?)`},
		},
		{
			name: "HelperMisuse",
			yaml: head + "  - name: a\n    when: days_since(customer.orders_count) > 1\n" + ok,
			want: []string{`r.yaml:4:31: rule "a": when: cannot use int as argument (type time.Time) to call days_since`},
		},
		{
			name: "WhenNotBoolean",
			yaml: head + "  - name: a\n    when: days_since(customer.last_order_at)\n" + ok,
			want: []string{`r.yaml:4:11: rule "a": when must be a boolean expression, got float64`},
		},
		{
			name: "WhenSyntaxError",
			yaml: head + "  - name: a\n    when: customer.orders_count >\n" + ok,
			want: []string{`r.yaml:4:33: rule "a": when: unexpected token EOF`},
		},
		{
			name: "WhenBlockScalarPosition",
			yaml: head + "  - name: a\n    when: |\n      customer.orders_count > 1\n        && customer.stag == \"x\"\n" + ok,
			want: []string{`r.yaml:6:21: rule "a": when: customer has no field "stag" (did you mean "stage"?)`},
		},
		{
			name: "WhenFoldedScalarPosition",
			yaml: head + "  - name: a\n    when: >-\n      customer.orders_count > 1\n      && custmer.stage == \"x\"\n" + ok,
			want: []string{`r.yaml:6:10: rule "a": when: unknown name "custmer" (did you mean "customer"?)`},
		},
		{
			name: "WhenPlainMultilinePosition",
			yaml: head + "  - name: a\n    when: customer.orders_count > 1\n      && custmer.stage == \"x\"\n" + ok,
			want: []string{`r.yaml:5:10: rule "a": when: unknown name "custmer" (did you mean "customer"?)`},
		},
		{
			name: "BadCron",
			yaml: head + "  - name: a\n    schedule: \"0 9 * *\"\n    cooldown: 1d\n    actions:\n      - stage: acquisition\n",
			want: []string{`r.yaml:4:15: rule "a": invalid schedule "0 9 * *": expected exactly 5 fields, found 4: [0 9 * *] (5 fields "minute hour day-of-month month day-of-week" or a descriptor such as @daily)`},
		},
		{
			name: "CronWithTimeZone",
			yaml: head + "  - name: a\n    schedule: \"CRON_TZ=UTC 0 9 * * *\"\n    cooldown: 1d\n    actions:\n      - stage: acquisition\n",
			want: []string{`r.yaml:4:15: rule "a": schedule must not set a time zone (use the rule's timezone: key)`},
		},
		{
			name: "BadDuration",
			yaml: head + "  - name: a\n    cooldown: 14x\n" + ok,
			want: []string{`r.yaml:4:15: rule "a": cooldown: unknown unit "x" in duration "14x" (units: s, m, h, d (days), w (weeks); e.g. 14d, 1w2d, 36h)`},
		},
		{
			name: "NegativeDuration",
			yaml: head + "  - name: a\n    cooldown: -1d\n" + ok,
			want: []string{`r.yaml:4:15: rule "a": cooldown must be positive, got -1d`},
		},
		{
			name: "BadTimezone",
			yaml: head + "  - name: a\n    schedule: \"@daily\"\n    timezone: Mars/Olympus\n    cooldown: 1d\n    actions:\n      - stage: acquisition\n",
			want: []string{`r.yaml:5:15: rule "a": unknown timezone "Mars/Olympus" (use an IANA name such as "Europe/Berlin")`},
		},
		{
			name: "UnknownActionKind",
			yaml: head + "  - name: a\n    on: signed_up\n    actions:\n      - stag: acquisition\n",
			want: []string{`r.yaml:6:9: rule "a": unknown action "stag" (did you mean "stage"?)`},
		},
		{
			name: "TwoKindsInOneAction",
			yaml: head + "  - name: a\n    on: signed_up\n    actions:\n      - stage: acquisition\n        email: { template: welcome }\n",
			want: []string{`r.yaml:7:9: rule "a": action has more than one kind (stage, email) (write each as its own list item)`},
		},
		{
			name: "UnknownStage",
			yaml: head + "  - name: a\n    on: signed_up\n    actions:\n      - stage: conversoin\n",
			want: []string{`r.yaml:6:16: rule "a": unknown stage "conversoin" (did you mean "conversion"?)`},
		},
		{
			name: "UnknownTemplate",
			yaml: head + "  - name: a\n    on: signed_up\n    actions:\n      - email: { template: win_bak }\n",
			want: []string{`r.yaml:6:28: rule "a": unknown email template "win_bak" (did you mean "win_back"?)`},
		},
		{
			name: "TemplatesNotChecked",
			yaml: head + "  - name: a\n    on: signed_up\n    actions:\n      - stage: acquisition\n      - email: { template: anything }\n",
			opts: &ParseOptions{},
		},
		{
			name: "MissingSecret",
			yaml: head + "  - name: a\n    on: signed_up\n    actions:\n      - stage: acquisition\n      - webhook: { url: \"${CRM_URL}\" }\n",
			want: []string{`r.yaml:7:25: rule "a": webhook url: environment variable CRM_URL is not set (set the environment variable CRM_URL, or check the file with --allow-missing-env)`},
		},
		{
			name: "NoLookupEnv",
			yaml: head + "  - name: a\n    on: signed_up\n    actions:\n      - stage: acquisition\n      - webhook: { url: \"${CRM_WEBHOOK_URL}\" }\n",
			opts: &ParseOptions{},
			want: []string{`r.yaml:7:25: rule "a": webhook url: environment variable CRM_WEBHOOK_URL is not set (set the environment variable CRM_WEBHOOK_URL, or check the file with --allow-missing-env)`},
		},
		{
			name: "WebhookNotHTTP",
			yaml: head + "  - name: a\n    on: signed_up\n    actions:\n      - stage: acquisition\n      - webhook: { url: \"${NOT_A_URL}\" }\n",
			want: []string{`r.yaml:7:25: rule "a": webhook url must be an absolute http(s) URL, got "${NOT_A_URL}" (e.g. https://crm.example.com/hooks/ciclo)`},
		},
		{
			name: "DuplicateRuleName",
			yaml: head + "  - name: a\n" + ok + "  - name: a\n" + ok,
			want: []string{`r.yaml:7:5: rule "a": duplicate rule name (first defined at line 3)`},
		},
		{
			name: "DuplicateKey",
			yaml: head + "  - name: a\n    on: signed_up\n    on: order_placed\n    actions:\n      - stage: acquisition\n",
			want: []string{`r.yaml:5:5: rule "a": duplicate key "on"`},
		},
		{
			name: "UnsupportedVersion",
			yaml: "version: 2\nrules:\n  - name: a\n" + ok,
			want: []string{`r.yaml:1:10: unsupported version 2 (this ciclo reads version: 1)`},
		},
		{
			name: "MissingVersion",
			yaml: "rules:\n  - name: a\n" + ok,
			want: []string{`r.yaml:1:1: missing version (add "version: 1")`},
		},
		{
			name: "PercentTooHigh",
			yaml: head + "  - name: a\n    on: signed_up\n    actions:\n      - coupon: { percent: 150, expires_in: 14d }\n",
			want: []string{`r.yaml:6:28: rule "a": coupon percent must be in (0, 100], got 150`},
		},
		{
			name: "PercentZero",
			yaml: head + "  - name: a\n    on: signed_up\n    actions:\n      - coupon: { percent: 0 }\n",
			want: []string{`r.yaml:6:28: rule "a": coupon percent must be in (0, 100], got 0`},
		},
		{
			name: "CouponTwoKinds",
			yaml: head + "  - name: a\n    on: signed_up\n    actions:\n      - coupon: { percent: 10, amount: 5 }\n",
			want: []string{`r.yaml:6:40: rule "a": coupon has both percent and amount (one kind per coupon)`},
		},
		{
			name: "QuietHoursFormat",
			yaml: "version: 1\ndefaults:\n  quiet_hours: \"9pm-8am\"\nrules:\n  - name: a\n" + ok,
			want: []string{`r.yaml:3:16: invalid quiet_hours "9pm-8am" (e.g. "21:00-08:00" (HH:MM-HH:MM, 24-hour, customer's local time))`},
		},
		{
			name: "QuietHoursOutOfRange",
			yaml: "version: 1\ndefaults:\n  quiet_hours: \"21:00-25:00\"\nrules:\n  - name: a\n" + ok,
			want: []string{`r.yaml:3:16: invalid quiet_hours "21:00-25:00": time of day out of range (e.g. "21:00-08:00" (HH:MM-HH:MM, 24-hour, customer's local time))`},
		},
		{
			name: "FrequencyCapMax",
			yaml: "version: 1\ndefaults:\n  frequency_cap: { max: 0, per: 7d }\nrules:\n  - name: a\n" + ok,
			want: []string{`r.yaml:3:25: frequency_cap max must be at least 1, got 0`},
		},
		{
			name: "RuleFrequencyCapMissingPer",
			yaml: head + "  - name: a\n    frequency_cap: { max: 2 }\n" + ok,
			want: []string{`r.yaml:4:20: rule "a": frequency_cap needs per (e.g. {max: 3, per: 7d})`},
		},
		{
			name: "ScheduledWithOn",
			yaml: head + "  - name: a\n    schedule: \"@daily\"\n    cooldown: 1d\n" + ok,
			want: []string{`r.yaml:6:9: rule "a": a scheduled rule cannot have on: (event rules use on:, time-based sweeps use schedule:; split it into two rules)`},
		},
		{
			name: "NeitherOnNorSchedule",
			yaml: head + "  - name: a\n    actions:\n      - stage: acquisition\n",
			want: []string{`r.yaml:3:5: rule "a": rule has neither on: nor schedule: (add "on: <event type>" or "schedule: <cron>")`},
		},
		{
			name: "NoActions",
			yaml: head + "  - name: a\n    on: signed_up\n",
			want: []string{`r.yaml:3:5: rule "a": rule has no actions (e.g. actions: [{stage: retention}])`},
		},
		{
			name: "MissingName",
			yaml: head + "  - on: signed_up\n    actions:\n      - stage: acquisition\n",
			want: []string{`r.yaml:3:5: rule 1 has no name`},
		},
		{
			name: "YAMLSyntax",
			yaml: "version: 1\nrules:\n  - name: a\n   on: [\n",
			want: []string{`r.yaml:2:1: invalid YAML: did not find expected '-' indicator`},
		},
		{
			name: "Empty",
			yaml: "",
			want: []string{`r.yaml:1:1: empty rules file (start with "version: 1")`},
		},
		{
			name: "NotAMapping",
			yaml: "- a\n",
			want: []string{`r.yaml:1:1: rules file must be a mapping of keys (version, stages, rules, …), got a list`},
		},
		{
			name: "AllErrorsCollected",
			yaml: "version: 1\nrules:\n  - name: a\n    wehn: x\n    on: signed_up\n    actions:\n      - stage: nope\n  - name: b\n    on: signed_up\n    cooldown: soon\n    actions:\n      - email: { template: missing }\n",
			want: []string{
				`r.yaml:4:5: rule "a": unknown key "wehn" (did you mean "when"?)`,
				`r.yaml:7:16: rule "a": unknown stage "nope" (stages are: reach, acquisition, conversion, retention, loyalty, at_risk, churned)`,
				`r.yaml:10:15: rule "b": cooldown: invalid duration "soon" (units: s, m, h, d (days), w (weeks); e.g. 14d, 1w2d, 36h)`,
				`r.yaml:12:28: rule "b": unknown email template "missing" (templates are: welcome, first_order_bonus, win_back, thank_you)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			opts := testOpts()
			if tt.opts != nil {
				opts = *tt.opts
			}
			rs, err := Parse("r.yaml", []byte(tt.yaml), opts)
			if len(tt.want) == 0 {
				require.NoError(t, err)
				require.NotNil(t, rs)
				return
			}
			require.Error(t, err)
			require.Nil(t, rs)
			var les *LoadErrors
			require.ErrorAs(t, err, &les)
			got := make([]string, len(*les))
			for i, e := range *les {
				got[i] = e.Error()
				require.False(t, e.Warning)
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, strings.Join(tt.want, "\n"), err.Error())

			var first *LoadError
			require.ErrorAs(t, err, &first)
			require.Equal(t, (*les)[0], first)
		})
	}
}

func TestParseWarnings(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "ScheduledWithoutCooldown",
			yaml: "version: 1\nstages: [new, gone]\nrules:\n  - name: sweep\n    schedule: \"@daily\"\n    actions:\n      - stage: gone\n",
			want: []string{`r.yaml:4:5: warning: rule "sweep": scheduled rule has no cooldown: it would fire on every tick for every matching customer (add e.g. "cooldown: 30d")`},
		},
		{
			name: "UnreachableStage",
			yaml: "version: 1\nstages: [new, active, gone]\nrules:\n  - name: a\n    on: signed_up\n    actions:\n      - stage: active\n",
			want: []string{`r.yaml:2:23: warning: stage "gone" is unreachable: no rule moves customers into it (add a rule with a "stage: gone" action or remove the stage)`},
		},
		{
			name: "TimezoneOnEventRule",
			yaml: "version: 1\nstages: [new, active]\nrules:\n  - name: a\n    on: signed_up\n    timezone: UTC\n    actions:\n      - stage: active\n",
			want: []string{`r.yaml:6:15: warning: rule "a": timezone has no effect on an event rule`},
		},
		{
			name: "None",
			yaml: "version: 1\nstages: [new, active]\nrules:\n  - name: a\n    on: signed_up\n    actions:\n      - stage: active\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			rs, err := Parse("r.yaml", []byte(tt.yaml), testOpts())
			require.NoError(t, err)
			var got []string
			for _, w := range rs.Warnings {
				require.True(t, w.Warning)
				got = append(got, w.Error())
			}
			require.Equal(t, tt.want, got)
		})
	}
}

// TestParseGolden checks every broken file in testdata/check against the
// exact output in its .golden file. Regenerate with go test -run
// TestParseGolden -update ./rules/.
func TestParseGolden(t *testing.T) {
	t.Parallel()

	files, err := filepath.Glob(filepath.Join("testdata", "check", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()

			data, err := os.ReadFile(path)
			require.NoError(t, err)
			got := checkOutput(t, filepath.ToSlash(path), data)
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err)
			require.Equal(t, string(want), got)
		})
	}
}

func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "check", "*.yaml"))
	seeds = append(seeds, filepath.Join("testdata", "valid.yaml"))
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A panic from this watchdog crashes the worker, so the fuzzer
		// records the input: Parse must not hang, not only not panic.
		done := make(chan struct{})
		go func() {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				panic(fmt.Sprintf("Parse hangs on %q", data))
			}
		}()
		defer close(done)
		rs, err := Parse("fuzz.yaml", data, testOpts())
		if err != nil {
			var les *LoadErrors
			if !errors.As(err, &les) || len(*les) == 0 || rs != nil {
				t.Fatalf("Parse error is not a non-empty *LoadErrors with nil set: %v", err)
			}
			return
		}
		if rs == nil || len(rs.Version) != 12 {
			t.Fatalf("Parse returned no set or a bad version")
		}
		for _, r := range rs.Rules {
			_, _ = r.Match(Input{Event: &Event{Type: r.On}})
		}
	})
}

// TestCheck covers Check: every error and warning of a file in one list,
// and ${NAME} references that need not be set.
func TestCheck(t *testing.T) {
	t.Parallel()

	t.Run("ErrorsAndWarningsTogether", func(t *testing.T) {
		t.Parallel()
		rs, all := Check("r.yaml", []byte(`version: 1
stages: [reach]
rules:
  - name: a
    on: signed_up
    actions:
      - stage: nowhere
  - name: b
    schedule: "@daily"
    actions:
      - email: { template: welcome }
`), testOpts())
		require.NotNil(t, rs)
		require.Len(t, rs.Rules, 2, "the rules are kept as far as they parse")
		var got []string
		for _, e := range all {
			got = append(got, e.Error())
		}
		require.Equal(t, []string{
			`r.yaml:7:16: rule "a": unknown stage "nowhere" (stages are: reach)`,
			`r.yaml:8:5: warning: rule "b": scheduled rule has no cooldown: it would fire on every tick for every matching customer (add e.g. "cooldown: 30d")`,
		}, got)
	})

	t.Run("AllowMissingEnv", func(t *testing.T) {
		t.Parallel()
		data := []byte(`version: 1
stages: [reach]
rules:
  - name: crm
    on: order_placed
    actions:
      - webhook: { url: "${UNSET_URL}", secret: "${BAD NAME}" }
`)
		opts := testOpts()
		opts.AllowMissingEnv = true
		_, all := Check("r.yaml", data, opts)
		var got []string
		for _, e := range all {
			got = append(got, e.Error())
		}
		require.Equal(t, []string{
			`r.yaml:7:25: warning: rule "crm": webhook url: environment variable UNSET_URL is not set here, so the value is not checked (set it where ciclo runs; ciclo serve refuses the file without it)`,
			`r.yaml:7:49: rule "crm": webhook secret: invalid reference ${BAD NAME} (names are letters, digits and _)`,
		}, got)
	})
}
