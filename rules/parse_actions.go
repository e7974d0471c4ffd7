package rules

import (
	"net/url"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

func (p *parser) actions(n *yaml.Node, rule string, rs *RuleSet, reached map[string]bool) ([]Action, []map[string]Pos) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, rule, "e.g. actions: [{stage: retention}]", "actions must be a list, got %s", kindName(n))
		return nil, nil
	}
	if len(n.Content) == 0 {
		p.errorf(n, rule, "e.g. actions: [{stage: retention}]", "rule has no actions")
		return nil, nil
	}
	var out []Action
	var pos []map[string]Pos
	for _, c := range n.Content {
		c = resolve(c)
		if c.Kind != yaml.MappingNode {
			p.errorf(c, rule, "e.g. - stage: retention", "action must be a mapping with one of stage, coupon, email, webhook, got %s", kindName(c))
			continue
		}
		kvs := p.entries(c, rule)
		var kinds []keyVal
		for _, kv := range kvs {
			if !slices.Contains(actionKinds, kv.key.Value) {
				hint := didYouMean(kv.key.Value, actionKinds)
				if hint == "" {
					hint = "actions are: " + strings.Join(actionKinds, ", ")
				}
				p.errorf(kv.key, rule, hint, "unknown action %q", kv.key.Value)
				continue
			}
			kinds = append(kinds, kv)
		}
		if len(kinds) > 1 {
			names := make([]string, len(kinds))
			for i, k := range kinds {
				names[i] = k.key.Value
			}
			p.errorf(kinds[1].key, rule, "write each as its own list item", "action has more than one kind (%s)", strings.Join(names, ", "))
			continue
		}
		if len(kinds) == 0 {
			if len(kvs) == 0 {
				p.errorf(c, rule, "actions are: "+strings.Join(actionKinds, ", "), "empty action")
			}
			continue
		}
		if a, ok := p.action(kinds[0].key.Value, resolve(kinds[0].val), rule, rs, reached); ok {
			out = append(out, a)
			pos = append(pos, actionPositions(kinds[0]))
		}
	}
	return out, pos
}

func (p *parser) action(kind string, v *yaml.Node, rule string, rs *RuleSet, reached map[string]bool) (Action, bool) {
	switch kind {
	case ActionStage:
		s, ok := p.str(v, rule, "stage")
		if !ok {
			return Action{}, false
		}
		if !slices.Contains(rs.Stages, s) {
			hint := didYouMean(s, rs.Stages)
			if hint == "" {
				hint = "stages are: " + strings.Join(rs.Stages, ", ")
			}
			p.errorf(v, rule, hint, "unknown stage %q", s)
			return Action{}, false
		}
		reached[s] = true
		return Action{Stage: s}, true
	case ActionCoupon:
		c := p.coupon(v, rule)
		return Action{Coupon: c}, c != nil
	case ActionEmail:
		e := p.email(v, rule)
		return Action{Email: e}, e != nil
	case ActionPoints:
		a := p.points(v, rule)
		return Action{Points: a}, a != nil
	default:
		w := p.webhook(v, rule)
		return Action{Webhook: w}, w != nil
	}
}

func (p *parser) coupon(n *yaml.Node, rule string) *CouponAction {
	const hint = "e.g. {percent: 10, expires_in: 14d}, {amount: 5, expires_in: 30d} or {free_shipping: true, expires_in: 7d}"
	if n.Kind != yaml.MappingNode {
		p.errorf(n, rule, hint, "coupon must be a mapping, got %s", kindName(n))
		return nil
	}
	errsBefore := len(p.errs)
	m := p.mapping(n, rule, couponKeys, "unknown key %q in coupon")
	var kinds []string
	for _, k := range []string{CouponPercent, CouponAmount, CouponFreeShipping} {
		if _, ok := m[k]; ok {
			kinds = append(kinds, k)
		}
	}
	c := &CouponAction{}
	switch len(kinds) {
	case 0:
		p.errorf(n, rule, hint, "coupon needs one of percent, amount or free_shipping")
	case 1:
		c.Kind = kinds[0]
		v := m[c.Kind]
		switch c.Kind {
		case CouponPercent:
			if f, ok := p.float(v, rule, "coupon percent"); ok {
				if f <= 0 || f > 100 {
					p.errorf(v, rule, "", "coupon percent must be in (0, 100], got %s", v.Value)
				}
				c.Value = f
			}
		case CouponAmount:
			if f, ok := p.float(v, rule, "coupon amount"); ok {
				if f <= 0 {
					p.errorf(v, rule, "", "coupon amount must be positive, got %s", v.Value)
				}
				c.Value = f
			}
		default:
			if b, ok := p.bool(v, rule, "coupon free_shipping"); ok && !b {
				p.errorf(v, rule, "remove the coupon action instead", "coupon free_shipping must be true")
			}
		}
	default:
		p.errorf(m[kinds[1]], rule, "one kind per coupon", "coupon has both %s and %s", kinds[0], kinds[1])
	}
	if v, ok := m["expires_in"]; ok {
		c.ExpiresIn, _ = p.duration(v, rule, "coupon expires_in", false)
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return c
}

func (p *parser) email(n *yaml.Node, rule string) *EmailAction {
	const hint = `e.g. {template: win_back, subject: "We miss you"}`
	if n.Kind != yaml.MappingNode {
		p.errorf(n, rule, hint, "email must be a mapping, got %s", kindName(n))
		return nil
	}
	errsBefore := len(p.errs)
	m := p.mapping(n, rule, emailKeys, "unknown key %q in email")
	e := &EmailAction{}
	if v, ok := m["template"]; ok {
		if t, ok := p.str(v, rule, "email template"); ok {
			e.Template = t
			if p.opts.Templates != nil && !slices.Contains(p.opts.Templates, t) {
				hint := didYouMean(t, p.opts.Templates)
				if hint == "" && len(p.opts.Templates) > 0 {
					hint = "templates are: " + strings.Join(p.opts.Templates, ", ")
				}
				p.errorf(v, rule, hint, "unknown email template %q", t)
			}
		}
	} else {
		p.errorf(n, rule, hint, "email needs a template")
	}
	if v, ok := m["subject"]; ok {
		e.Subject, _ = p.str(v, rule, "email subject")
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return e
}

func (p *parser) webhook(n *yaml.Node, rule string) *WebhookAction {
	const hint = `e.g. {url: "${CRM_WEBHOOK_URL}", secret: "${CRM_WEBHOOK_SECRET}"}`
	if n.Kind != yaml.MappingNode {
		p.errorf(n, rule, hint, "webhook must be a mapping, got %s", kindName(n))
		return nil
	}
	errsBefore := len(p.errs)
	m := p.mapping(n, rule, webhookKeys, "unknown key %q in webhook")
	w := &WebhookAction{}
	if v, ok := m["url"]; ok {
		if raw, ok := p.str(v, rule, "webhook url"); ok {
			if s, ok := p.expand(v, rule, "webhook url", raw); ok && !envRefRe.MatchString(s) {
				// Report the raw value: the expanded one may hold a token.
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					p.errorf(v, rule, "e.g. https://crm.example.com/hooks/ciclo", "webhook url must be an absolute http(s) URL, got %q", raw)
				}
				w.URL = s
			}
		}
	} else {
		p.errorf(n, rule, hint, "webhook needs a url")
	}
	if v, ok := m["secret"]; ok {
		if raw, ok := p.str(v, rule, "webhook secret"); ok {
			w.Secret, _ = p.expand(v, rule, "webhook secret", raw)
		}
	}
	if len(p.errs) > errsBefore {
		return nil
	}
	return w
}

// expand replaces ${NAME} references in s (the value of what) through
// opts.LookupEnv, reporting each reference it cannot resolve: an error, or
// with opts.AllowMissingEnv a warning, the reference then staying in the
// value. A malformed reference is always an error.
func (p *parser) expand(n *yaml.Node, rule, what, s string) (string, bool) {
	ok := true
	out := envRefRe.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[2 : len(ref)-1]
		if !envNameRe.MatchString(name) {
			p.errorf(n, rule, "names are letters, digits and _", "%s: invalid reference %s", what, ref)
			ok = false
			return ref
		}
		if p.opts.LookupEnv != nil {
			if v, found := p.opts.LookupEnv(name); found {
				return v
			}
		}
		if p.opts.AllowMissingEnv {
			p.warnf(n, rule, "set it where ciclo runs; ciclo serve refuses the file without it",
				"%s: environment variable %s is not set here, so the value is not checked", what, name)
			return ref
		}
		p.errorf(n, rule, "set the environment variable "+name+", or check the file with --allow-missing-env",
			"%s: environment variable %s is not set", what, name)
		ok = false
		return ref
	})
	return out, ok
}
