package rules

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ParseDuration parses a duration such as "14d", "1w2d", "36h" or "1h30m". It
// accepts Go's units (ns, us, µs, ms, s, m, h) plus d (24h) and w (7d), any
// number of number+unit pairs, fractions ("1.5d") and a leading sign. "0"
// alone is zero. Days are always 24 hours: the result is elapsed time, not
// calendar arithmetic. It errors on anything else and on overflow.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	if s == "" {
		return 0, errors.New("invalid duration \"\"")
	}
	if strings.ContainsFunc(s, unicode.IsSpace) {
		return 0, fmt.Errorf("invalid duration %q: no spaces allowed", orig)
	}
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, fmt.Errorf("invalid duration %q", orig)
	}
	var total float64 // nanoseconds; float so overflow is detectable
	for s != "" {
		i := 0
		for i < len(s) && (s[i] == '.' || ('0' <= s[i] && s[i] <= '9')) {
			i++
		}
		num := s[:i]
		if num == "" || num == "." {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
		s = s[i:]
		j := 0
		for j < len(s) && s[j] != '.' && (s[j] < '0' || s[j] > '9') {
			j++
		}
		unit := s[:j]
		s = s[j:]
		if unit == "" {
			return 0, fmt.Errorf("missing unit in duration %q", orig)
		}
		scale, ok := durationUnits[unit]
		if !ok {
			return 0, fmt.Errorf("unknown unit %q in duration %q", unit, orig)
		}
		if strings.Count(num, ".") > 1 {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", orig)
		}
		total += v * float64(scale)
		if total > math.MaxInt64 {
			return 0, fmt.Errorf("invalid duration %q: too large", orig)
		}
	}
	d := time.Duration(math.Round(total))
	if total >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid duration %q: too large", orig)
	}
	if neg {
		d = -d
	}
	return d, nil
}

var durationUnits = map[string]time.Duration{
	"ns": time.Nanosecond,
	"us": time.Microsecond,
	"µs": time.Microsecond,
	"μs": time.Microsecond,
	"ms": time.Millisecond,
	"s":  time.Second,
	"m":  time.Minute,
	"h":  time.Hour,
	"d":  24 * time.Hour,
	"w":  7 * 24 * time.Hour,
}
