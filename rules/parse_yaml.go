package rules

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// yamlError turns a yaml.v3 syntax or structure error into LoadErrors.
func (p *parser) yamlError(err error) {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, msg := range msgs {
		msg = strings.TrimPrefix(msg, "yaml: ")
		e := &LoadError{File: p.file, Line: 1, Column: 1, Message: "invalid YAML: " + msg}
		if m := yamlLineRe.FindStringSubmatch("yaml: " + msg); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Message = "invalid YAML: " + m[2]
		}
		p.errs = append(p.errs, e)
	}
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < maxAliasDepth; i++ {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "an alias"
}

// mapping returns the entries of mapping node n by key, reporting duplicate
// and unknown keys (unknownFormat has one %q verb for the key). n must
// already be resolved.
func (p *parser) mapping(n *yaml.Node, rule string, allowed []string, unknownFormat string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	for _, kv := range p.entries(n, rule) {
		k := kv.key.Value
		if !slices.Contains(allowed, k) {
			hint := didYouMean(k, allowed)
			if hint == "" {
				hint = "valid keys: " + strings.Join(allowed, ", ")
			}
			p.errorf(kv.key, rule, hint, unknownFormat, k)
			continue
		}
		out[k] = resolve(kv.val)
	}
	return out
}

// entries lists the key/value pairs of mapping node n, reporting non-scalar
// and duplicate keys.
func (p *parser) entries(n *yaml.Node, rule string) []keyVal {
	var out []keyVal
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, rule, "", "mapping keys must be plain names, got %s", kindName(k))
			continue
		}
		if seen[k.Value] {
			p.errorf(k, rule, "", "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		out = append(out, keyVal{k, v})
	}
	return out
}

// peek returns the scalar value of key in mapping node n, without reporting.
func peek(n *yaml.Node, key string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k != nil && v != nil && k.Kind == yaml.ScalarNode && k.Value == key && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			return v.Value
		}
	}
	return ""
}

// str reads a non-empty scalar.
func (p *parser) str(n *yaml.Node, rule, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, rule, "", "%s must be a string, got %s", what, kindName(n))
		return "", false
	}
	if strings.TrimSpace(n.Value) == "" {
		p.errorf(n, rule, "", "%s must not be empty", what)
		return "", false
	}
	return n.Value, true
}

func (p *parser) int(n *yaml.Node, rule, what string) (int, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		var v int
		if err := n.Decode(&v); err == nil {
			return v, true
		}
	}
	p.errorf(n, rule, "", "%s must be an integer, got %s", what, kindName(n))
	return 0, false
}

func (p *parser) float(n *yaml.Node, rule, what string) (float64, bool) {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		var v float64
		if err := n.Decode(&v); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			return v, true
		}
	}
	p.errorf(n, rule, "", "%s must be a number, got %s", what, kindName(n))
	return 0, false
}

func (p *parser) bool(n *yaml.Node, rule, what string) (bool, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var v bool
		if err := n.Decode(&v); err == nil {
			return v, true
		}
	}
	p.errorf(n, rule, "", "%s must be true or false, got %s", what, kindName(n))
	return false, false
}

// duration reads a positive (or, with allowZero, non-negative) duration.
func (p *parser) duration(n *yaml.Node, rule, what string, allowZero bool) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, rule, "", "%s must be a duration such as 14d, got %s", what, kindName(n))
		return 0, false
	}
	d, err := ParseDuration(n.Value)
	if err != nil {
		p.errorf(n, rule, "units: s, m, h, d (days), w (weeks); e.g. 14d, 1w2d, 36h", "%s: %v", what, err)
		return 0, false
	}
	if d < 0 || d == 0 && !allowZero {
		p.errorf(n, rule, "", "%s must be positive, got %s", what, n.Value)
		return 0, false
	}
	return d, true
}
