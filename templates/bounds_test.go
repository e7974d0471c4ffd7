package templates_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/templates"
)

func TestRenderBounds(t *testing.T) {
	t.Parallel()

	// Loops over a number are counted at parse time, nested ones multiplied.
	rejected := []struct{ name, html string }{
		{"HugeRange", `{{range 100000000}}x{{end}}`},
		{"NestedRanges", `{{range 1000}}{{range 1000}}x{{end}}{{end}}`},
		{"RangeInIf", `{{if true}}{{range 20000}}{{end}}{{end}}`},
	}
	t.Run("RecursiveTemplate", func(t *testing.T) {
		t.Parallel()
		dir := writeFiles(t, map[string]string{"rec.html": `{{define "loop"}}{{template "loop"}}{{end}}{{template "loop"}}{{.UnsubscribeURL}}`, "rec.txt": "{{.UnsubscribeURL}}"})
		_, err := templates.New(dir)
		require.ErrorContains(t, err, `template "loop" calls itself`)
	})
	for _, tc := range rejected {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := writeFiles(t, map[string]string{"huge.html": tc.html + "{{.UnsubscribeURL}}", "huge.txt": "{{.UnsubscribeURL}}"})
			_, err := templates.New(dir)
			require.ErrorContains(t, err, "loops over a number are allowed")
			require.ErrorContains(t, err, "huge.html")
		})
	}

	t.Run("SmallRangeIsFine", func(t *testing.T) {
		t.Parallel()
		dir := writeFiles(t, map[string]string{"ok.html": `{{range 3}}x{{end}}{{.UnsubscribeURL}}`, "ok.txt": "{{.UnsubscribeURL}}"})
		set, err := templates.New(dir)
		require.NoError(t, err)
		r, err := set.Render("ok", "hi", templates.SampleData())
		require.NoError(t, err)
		require.Contains(t, r.HTML, "xxx")
	})

	// Output that grows with the data stops at MaxOutputBytes.
	t.Run("OutputOverTheBound", func(t *testing.T) {
		t.Parallel()
		dir := writeFiles(t, map[string]string{"big.html": `{{range 10000}}{{$.Customer.Name}}{{end}}{{.UnsubscribeURL}}`, "big.txt": "{{.UnsubscribeURL}}"})
		set, err := templates.New(dir)
		require.NoError(t, err)
		d := templates.SampleData()
		d.Customer.Name = strings.Repeat("n", 1000) // 10 MB in all
		_, err = set.Render("big", "hi", d)
		require.ErrorIs(t, err, templates.ErrTooLarge)

		d.Customer.Name = "Ana"
		_, err = set.Render("big", "hi", d)
		require.NoError(t, err)
	})

	t.Run("SubjectRange", func(t *testing.T) {
		t.Parallel()
		set, err := templates.New("")
		require.NoError(t, err)
		require.ErrorContains(t, set.CheckSubject(`{{range 100000000}}x{{end}}`), "loops over a number are allowed")
		require.ErrorContains(t, set.CheckSubject(`{{define "x"}}{{template "x"}}{{end}}{{template "x"}}`), `template "x" calls itself (subject → x → x)`)
		require.ErrorContains(t, set.CheckSubject(`{{define "a"}}{{if true}}{{template "b"}}{{end}}{{end}}{{define "b"}}{{template "a"}}{{end}}{{template "a"}}`), "recursion is not allowed")
	})
}
