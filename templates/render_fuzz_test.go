package templates_test

import (
	"testing"

	"github.com/ciclohq/ciclo/templates"
)

// FuzzRenderSubject renders arbitrary subject templates (the part of a
// template a rules file gives inline) with arbitrary customer names: no
// panic, and output within MaxOutputBytes.
func FuzzRenderSubject(f *testing.F) {
	for _, seed := range [][2]string{
		{"A gift for {{.Customer.Name}}", "Ana"},
		{"{{.Coupon.Code}} is yours", "Bo"},
		{"{{range 100000000}}x{{end}}", ""},
		{"{{range 9999}}{{$.Customer.Name}}{{end}}", "a very long name indeed"},
		{"{{template \"x\"}}", ""},
		{"{{define \"x\"}}{{template \"x\"}}{{end}}{{template \"x\"}}", ""},
		{"{{", "\x00\xff"},
	} {
		f.Add(seed[0], seed[1])
	}
	set, err := templates.New("")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, subject, name string) {
		d := templates.SampleData()
		d.Customer.Name = name
		r, err := set.Render("first_order_bonus", subject, d)
		if err != nil {
			return
		}
		for _, part := range []string{r.Subject, r.HTML, r.Text} {
			if len(part) > templates.MaxOutputBytes {
				t.Fatalf("a part of %d bytes", len(part))
			}
		}
	})
}
