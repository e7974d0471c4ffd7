package rules

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxHoldout bounds a holdout share: holding out more than half of the
// matches is never what a marketer means.
const maxHoldout = 0.5

// HeldOut reports whether customerID is in the rule's holdout group: a
// stable, random share (Rule.Holdout) of the customers it matches that it
// leaves untouched, so that reports can compare them with those it acted
// on. The assignment hashes the rule's name (its salt) with the customer
// id, so it is the same in every process, run and restart, and a customer
// held out of one rule is not thereby held out of another.
func (r *Rule) HeldOut(customerID string) bool {
	if r.Holdout <= 0 {
		return false
	}
	return holdoutBucket(r.Name, customerID) < r.Holdout
}

// holdoutBucket maps (salt, id) to a number uniform in [0, 1).
func holdoutBucket(salt, id string) float64 {
	h := sha256.New()
	h.Write([]byte(salt))
	h.Write([]byte{0})
	h.Write([]byte(id))
	sum := h.Sum(nil)
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}

// holdout reads a share written "10%" or as a fraction 0.1.
func (p *parser) holdout(n *yaml.Node, rule string) (float64, bool) {
	const hint = `e.g. holdout: 10%`
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, rule, hint, "holdout must be a percentage, got %s", kindName(n))
		return 0, false
	}
	s := strings.TrimSpace(n.Value)
	pct := strings.HasSuffix(s, "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
	if err != nil {
		p.errorf(n, rule, hint, "holdout %q is not a percentage", n.Value)
		return 0, false
	}
	if pct || f > 1 {
		f /= 100
	}
	if f < 0 || f > maxHoldout {
		p.errorf(n, rule, "hold out at most 50% of the matches", "holdout %q is out of range", n.Value)
		return 0, false
	}
	return f, true
}
