package ingest_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/ingest"
)

func TestPayloadHash(t *testing.T) {
	t.Parallel()
	decode := func(t *testing.T, doc string) any {
		t.Helper()
		var v any
		require.NoError(t, json.Unmarshal([]byte(doc), &v))
		return v
	}
	tests := []struct {
		name     string
		a, b     string
		wantSame bool
	}{
		{"KeyOrder", `{"a":1,"b":{"c":[1,2],"d":"x"}}`, `{"b":{"d":"x","c":[1,2]},"a":1}`, true},
		{"NumberSpelling", `{"t":42.5}`, `{"t":42.50}`, true},
		{"Exponent", `{"t":100}`, `{"t":1e2}`, true},
		{"NegativeZero", `{"t":0}`, `{"t":-0}`, true},
		{"Whitespace", `{ "a" : [ 1 , 2 ] }`, `{"a":[1,2]}`, true},
		{"Escapes", `{"a":"\u00e9"}`, `{"a":"é"}`, true},
		{"OtherNumber", `{"t":42.5}`, `{"t":42.51}`, false},
		{"NumberVsString", `{"t":1}`, `{"t":"1"}`, false},
		{"NullVsFalse", `{"t":null}`, `{"t":false}`, false},
		{"NullVsAbsent", `{"t":null}`, `{}`, false},
		{"KeyValueBoundary", `{"a":"bc"}`, `{"ab":"c"}`, false},
		{"ArrayBoundary", `["a","b"]`, `["ab"]`, false},
		{"NestingBoundary", `[[1],2]`, `[[1,2]]`, false},
		{"ObjectVsArray", `{}`, `[]`, false},
		{"ArrayOrder", `[1,2]`, `[2,1]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := ingest.PayloadHash(decode(t, tt.a)), ingest.PayloadHash(decode(t, tt.b))
			require.Len(t, a, 32)
			if tt.wantSame {
				require.Equal(t, a, b)
			} else {
				require.NotEqual(t, a, b)
			}
		})
	}
	t.Run("FieldBoundaries", func(t *testing.T) {
		t.Parallel()
		require.NotEqual(t, ingest.PayloadHash("ab", "c"), ingest.PayloadHash("a", "bc"))
		require.NotEqual(t, ingest.PayloadHash("a", ""), ingest.PayloadHash("", "a"))
		require.Equal(t, ingest.PayloadHash("a", map[string]any{"x": 1.0}), ingest.PayloadHash("a", map[string]any{"x": 1.0}))
	})
}
