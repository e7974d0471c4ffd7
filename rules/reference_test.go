package rules

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReference(t *testing.T) {
	t.Parallel()

	ref := EnvReference()

	t.Run("EveryNameIsDocumented", func(t *testing.T) {
		t.Parallel()
		for _, v := range ref.Variables {
			require.NotEmpty(t, v.Doc, v.Name)
			for _, f := range v.Fields {
				require.NotEmpty(t, f.Doc, v.Name+"."+f.Name)
			}
		}
		for _, f := range ref.Functions {
			require.NotEmpty(t, f.Doc, f.Name)
		}
	})

	t.Run("MatchesDidYouMeanLists", func(t *testing.T) {
		t.Parallel()
		var top []string
		fields := map[string][]string{}
		for _, v := range ref.Variables {
			top = append(top, v.Name)
			for _, f := range v.Fields {
				fields[v.Name] = append(fields[v.Name], f.Name)
			}
		}
		for _, f := range ref.Functions {
			top = append(top, f.Name)
		}
		require.Equal(t, envNames, top)
		require.Equal(t, customerFields, fields["customer"])
		require.Equal(t, eventFields, fields["event"])
	})

	t.Run("EveryNameCompiles", func(t *testing.T) {
		t.Parallel()
		for _, v := range ref.Variables {
			for _, f := range v.Fields {
				_, err := Parse("r.yaml", []byte("version: 1\nrules:\n  - name: r\n    on: x\n    when: "+v.Name+"."+f.Name+" != nil\n    actions: [{stage: reach}]\n"), ParseOptions{})
				require.NoError(t, err, v.Name+"."+f.Name)
			}
		}
	})

	t.Run("Signatures", func(t *testing.T) {
		t.Parallel()
		sigs := map[string]string{}
		for _, f := range ref.Functions {
			sigs[f.Name] = f.Signature
		}
		require.Equal(t, map[string]string{
			"days_since":  "days_since(t time) float",
			"hours_since": "hours_since(t time) float",
			"days_until":  "days_until(t time) float",
			"local_hour":  "local_hour() int",
			"has":         "has(t time) bool",
		}, sigs)
	})
}
