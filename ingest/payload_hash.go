package ingest

import (
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// PayloadHash returns the SHA-256 of values in a canonical form, for telling
// a retry (same payload) from a reused idempotency key (another payload).
// Each value is what encoding/json decodes into an any (nil, bool, float64,
// string, []any, map[string]any) or a string or map[string]any field: object
// keys are taken in sorted order, numbers by value (42.5 and 42.50 are the
// same), and every string and collection is length-prefixed so that distinct
// payloads never encode alike. It panics on any other type, a programmer
// error.
func PayloadHash(values ...any) []byte {
	buf := make([]byte, 0, 256)
	for _, v := range values {
		buf = appendCanonical(buf, v)
	}
	sum := sha256.Sum256(buf)
	return sum[:]
}

func appendCanonical(buf []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(buf, 'n')
	case bool:
		if v {
			return append(buf, 't')
		}
		return append(buf, 'f')
	case float64:
		if v == 0 {
			v = 0 // -0 is 0
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			panic(fmt.Sprintf("ingest: canonical form of %v", v))
		}
		buf = append(buf, 'd')
		buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
		return append(buf, ';')
	case string:
		return appendString(append(buf, 's'), v)
	case []any:
		buf = strconv.AppendInt(append(buf, '['), int64(len(v)), 10)
		buf = append(buf, ':')
		for _, e := range v {
			buf = appendCanonical(buf, e)
		}
		return buf
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = strconv.AppendInt(append(buf, '{'), int64(len(v)), 10)
		buf = append(buf, ':')
		for _, k := range keys {
			buf = appendString(buf, k)
			buf = appendCanonical(buf, v[k])
		}
		return buf
	}
	panic(fmt.Sprintf("ingest: no canonical form for %T", v))
}

func appendString(buf []byte, s string) []byte {
	buf = strconv.AppendInt(buf, int64(len(s)), 10)
	buf = append(buf, ':')
	return append(buf, s...)
}
