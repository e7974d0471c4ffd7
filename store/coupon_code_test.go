package store

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNewCouponCode(t *testing.T) {
	t.Parallel()
	format := regexp.MustCompile(`^[` + couponAlphabet + `]{5}-[` + couponAlphabet + `]{5}$`)
	seen := map[string]bool{}
	for range 10000 {
		code := NewCouponCode()
		require.Regexp(t, format, code)
		require.False(t, seen[code], "duplicate code %s", code)
		seen[code] = true
	}
}
