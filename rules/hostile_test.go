package rules

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// laughs is a "billion laughs" YAML: nine levels of anchors, each a list of
// nine aliases of the one before, 9⁹ strings if expanded. indent is the
// indentation of its keys.
func laughs(indent string) string {
	var b strings.Builder
	b.WriteString(indent + `l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "%sl%d: &l%d [%s*l%d]\n", indent, i, i, strings.Repeat(fmt.Sprintf("*l%d,", i-1), 8), i-1)
	}
	return b.String()
}

// TestHostileRuleFiles: alias bombs wherever the parser looks, files over
// the size limit and files with too many rules are load errors that say
// why, found without expanding the aliases or parsing the whole file.
func TestHostileRuleFiles(t *testing.T) {
	t.Parallel()
	manyRules := func(n int) string {
		var b strings.Builder
		b.WriteString("version: 1\nstages: [a, b]\nrules:\n")
		for i := range n {
			fmt.Fprintf(&b, "  - {name: r%d, on: e, actions: [{stage: b}]}\n", i)
		}
		return b.String()
	}
	bomb := "bomb:\n" + laughs("  ")
	tests := []struct {
		name    string
		data    string
		wantMsg string
	}{
		{"AliasBombTopLevel", "version: 1\n" + laughs("") + "rules: []\n", `unknown top-level key "l0"`},
		{"AliasBombAsStages", "version: 1\n" + bomb + "stages: *l8\nrules: []\n", "stage name must be a string, got a list"},
		{"AliasBombAsRules", "version: 1\n" + bomb + "rules: *l8\n", "rule 1 must be a mapping, got a list"},
		{"AliasBombInRule", "version: 1\n" + bomb + "rules:\n  - name: r\n    on: *l8\n    when: *l8\n    actions: *l8\n", "must be a string"},
		{"AliasBombAsTiers", "version: 1\n" + bomb + "tiers: *l8\nrules: []\n", "tier"},
		{"AliasBombAsDefaults", "version: 1\n" + bomb + "defaults: *l8\nrules: []\n", "defaults must be a mapping"},
		{"AliasBombAsAction", "version: 1\n" + bomb + "rules:\n  - name: r\n    on: e\n    actions:\n      - email: *l8\n", "email"},
		{"FileOverTheLimit", manyRules(1) + "# " + strings.Repeat("x", MaxFileBytes) + "\n", "rules file is larger than 1048576 bytes (1 MiB)"},
		{"TooManyRules", manyRules(MaxRules + 1), "1001 rules, over the limit of 1000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			rs, err := Parse("r.yaml", []byte(tc.data), testOpts())
			runtime.ReadMemStats(&after)
			require.Nil(t, rs)
			var les *LoadErrors
			require.True(t, errors.As(err, &les), "%v", err)
			require.ErrorContains(t, err, tc.wantMsg)
			require.LessOrEqual(t, len(*les), 100, "errors are not multiplied by the aliases")
			// Allocation is counted across parallel tests too: the bound
			// is loose, far below an expansion (9⁹ strings) or a full parse.
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(512<<20), "allocated while parsing")
		})
	}
}
