package app

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/templates"
)

// checkTemplates renders every email action of rs with sample data shaped
// like what dispatch will have: no event for scheduled rules, no coupon for
// rules that issue none. Problems are *rules.LoadErrors at the position of
// the action's template (or subject) in the file, so `rules check` shows
// them like any other error.
func checkTemplates(path string, rs *rules.RuleSet, tset *templates.Set) error {
	var errs rules.LoadErrors
	add := func(r *rules.Rule, at rules.Pos, hint, format string, args ...any) {
		errs = append(errs, &rules.LoadError{File: path, Line: at.Line, Column: at.Column, Rule: r.Name,
			Message: fmt.Sprintf(format, args...), Hint: hint})
	}
	for _, r := range rs.Rules {
		data := SampleDataFor(r)
		for i, a := range r.Actions {
			if a.Email == nil {
				continue
			}
			if a.Email.Subject != "" {
				if err := tset.CheckSubject(a.Email.Subject); err != nil {
					add(r, r.ActionPos(i, "subject"), "", "email subject does not render: %s", templateMessage(err))
					continue
				}
			}
			_, err := tset.Render(a.Email.Template, a.Email.Subject, data)
			switch {
			case err == nil:
			case errors.Is(err, templates.ErrNoSubject):
				add(r, r.ActionPos(i, "template"), `add e.g. subject: "…" to the email action`,
					"template %q has no default subject and the action gives none", a.Email.Template)
			case errors.Is(err, templates.ErrNoCoupon):
				add(r, r.ActionPos(i, "template"), "add a coupon action before the email, or use another template",
					"template %q shows a coupon but the rule issues none", a.Email.Template)
			case errors.Is(err, templates.ErrNoEvent):
				add(r, r.ActionPos(i, "template"), "scheduled rules have no event; use a template without .Event",
					"template %q shows the event but a scheduled rule has none", a.Email.Template)
			default:
				add(r, r.ActionPos(i, "template"), "", "template %q does not render: %s", a.Email.Template, templateMessage(err))
			}
		}
	}
	if len(errs) > 0 {
		return &errs
	}
	return nil
}

// SampleDataFor is templates.SampleData shaped like what dispatch has for
// rule r: no event for a scheduled rule, no coupon when it issues none, and
// the coupon kind and value of its first coupon action. A rule whose when
// reads customer.coupon_expires_at keeps a coupon: dispatch shows the
// customer's active coupon that expires first.
func SampleDataFor(r *rules.Rule) templates.Data {
	data := templates.SampleData()
	data.Rule = r.Name
	if r.On == "" {
		data.Event = nil
	} else {
		data.Event.Type = r.On
	}
	if !slices.Contains(r.Fields, "coupon_expires_at") {
		// A rule that tests the customer's coupon expiry is sent with that
		// coupon; any other rule has only the coupons it issues.
		data.Coupon = nil
	}
	for _, a := range r.Actions {
		if a.Coupon != nil {
			c := templates.SampleData().Coupon
			c.Kind, c.Value = a.Coupon.Kind, a.Coupon.Value
			if a.Coupon.ExpiresIn > 0 {
				c.ExpiresAt = data.Now.Add(a.Coupon.ExpiresIn)
			}
			data.Coupon = c
			break
		}
	}
	return data
}

// templateMessage drops the package prefix from a templates error.
func templateMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "templates: ")
}

// withTemplateNameErrors completes the errors of a file that failed its
// first parse (which cannot know templates_dir) with unknown template
// names, so that `rules check` reports every error in one run. It reads
// templates_dir directly from the YAML; when that or the templates cannot
// be read, it returns err as it is.
func withTemplateNameErrors(path string, data []byte, err error) error {
	var top struct {
		TemplatesDir string `yaml:"templates_dir"`
	}
	if yaml.Unmarshal(data, &top) != nil {
		return err
	}
	dir := top.TemplatesDir
	if dir != "" && !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(path), dir)
	}
	tset, terr := templates.New(dir)
	if terr != nil {
		return err
	}
	if _, all := rules.Parse(path, data, rules.ParseOptions{LookupEnv: os.LookupEnv, Templates: tset.Names()}); all != nil {
		return all
	}
	return err
}

// CheckRules checks a rules file for `ciclo rules check`: unlike LoadRules
// it does not stop at the first kind of problem, so one run reports every
// error and warning (of the YAML, the rules, their expressions and the
// templates they render), in file order. With allowMissingEnv a ${NAME}
// that is not set is a warning instead of an error. The error is for a
// file or templates directory that cannot be read.
func CheckRules(path string, allowMissingEnv bool) ([]*rules.LoadError, error) {
	data, err := readRulesFile(path)
	if err != nil {
		return nil, err
	}
	opts := rules.ParseOptions{LookupEnv: os.LookupEnv, AllowMissingEnv: allowMissingEnv}
	// A first pass without template checks finds templates_dir.
	rs, all := rules.Check(path, data, opts)
	if rs == nil {
		return all, nil
	}
	dir := rs.TemplateDir
	if dir != "" && !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(path), dir)
	}
	tset, err := templates.New(dir)
	if err != nil {
		return all, fmt.Errorf("load templates: %w", err)
	}
	opts.Templates = tset.Names()
	rs, all = rules.Check(path, data, opts)
	var les *rules.LoadErrors
	if err := checkTemplates(path, rs, tset); errors.As(err, &les) {
		all = append(all, *les...)
	}
	slices.SortStableFunc(all, func(a, b *rules.LoadError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return all, nil
}
