// Package templates holds ciclo's email templates and renders them with customer, event and
// coupon data.
//
// A template NAME is three files:
//
//   - NAME.html: the HTML content (html/template), executed as the "content" block of the
//     shared layout.html, which adds the store header and the unsubscribe footer;
//   - NAME.txt: the plain-text content (text/template), executed inside the shared
//     layout.txt, which adds the text footer with the unsubscribe link;
//   - NAME.subject.txt (optional): the default subject (text/template, one line).
//
// Defaults are embedded (default/); a directory of overrides may replace any of those files,
// layouts included, or add new templates. All templates see a Data value and fail on missing
// map keys ("missingkey=error"), so Set.Check finds mistakes at load time rather than at
// send time. Use {{index .Customer.Attributes "key"}} for attributes that may be absent.
//
// Functions available in templates: date (time → "January 2, 2006"), expiresIn (expiry,
// now → "today", "tomorrow" or "in N days"), money (float → "12.50"), plural (n, one,
// many). Data also has the method DaysUntil.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html"
	htmltemplate "html/template"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	tparse "text/template/parse"
	"time"
)

const (
	layoutHTML    = "layout.html"
	layoutText    = "layout.txt"
	subjectSuffix = ".subject.txt"
)

// Bounds on rendering: a template that would write more than
// MaxOutputBytes into one part (subject, HTML or text), or still be
// writing after MaxRenderTime, fails to render instead of exhausting the
// process; loops over a number (`{{range 100000000}}`) may not run more
// than MaxRangeIterations times in all, nested loops multiplied, which is
// checked when the template is parsed (so `rules check` and a reload
// reject it).
const (
	MaxOutputBytes     = 1 << 20
	MaxRenderTime      = 2 * time.Second
	MaxRangeIterations = 10000
)

// Sentinel errors returned (wrapped) by Set methods.
var (
	// ErrUnknownTemplate means no template has the requested name.
	ErrUnknownTemplate = errors.New("unknown template")
	// ErrNoSubject means neither the caller nor the template gave a subject.
	ErrNoSubject = errors.New("no subject: give one or add NAME.subject.txt")
	// ErrNoUnsubscribeURL means Data.UnsubscribeURL is empty; every email must carry one.
	ErrNoUnsubscribeURL = errors.New("no unsubscribe URL")
	// ErrNoUnsubscribeLink means a rendered body does not show the
	// unsubscribe URL: an override layout or template dropped the footer.
	ErrNoUnsubscribeLink = errors.New("body does not show the unsubscribe link (keep {{.UnsubscribeURL}} in the layout)")
	// ErrNoCoupon means the template uses .Coupon but Data.Coupon is nil.
	ErrNoCoupon = errors.New("template uses .Coupon but no coupon was given")
	// ErrNoEvent means the template uses .Event but Data.Event is nil.
	ErrNoEvent = errors.New("template uses .Event but no event was given")
	// ErrTooLarge means a rendered part would exceed MaxOutputBytes.
	ErrTooLarge = fmt.Errorf("output larger than %d bytes", MaxOutputBytes)
	// ErrTooSlow means rendering took longer than MaxRenderTime.
	ErrTooSlow = fmt.Errorf("rendering took longer than %s", MaxRenderTime)
)

//go:embed default
var defaultFS embed.FS

// Set is a parsed, immutable set of templates. It is safe for concurrent use.
type Set struct {
	html     map[string]*htmltemplate.Template
	text     map[string]*texttemplate.Template
	subjects map[string]*texttemplate.Template // default subjects, by template name
	names    []string

	given sync.Map // subject source → *texttemplate.Template, for subjects passed to Render
}

// Rendered is a rendered email.
type Rendered struct {
	// Subject is one line, whitespace collapsed.
	Subject string
	// HTML is the full HTML document, layout included.
	HTML string
	// Text is the plain-text body, footer included.
	Text string
}

// Data is what templates are executed with.
type Data struct {
	// Customer is the recipient.
	Customer Customer
	// Event is the event that fired the rule; nil for scheduled rules.
	Event *Event
	// Coupon is the coupon the rule created; nil if it created none.
	Coupon *Coupon
	// Rule is the name of the rule that fired.
	Rule string
	// UnsubscribeURL is the customer's one-click unsubscribe link. Required.
	UnsubscribeURL string
	// StoreName is the store's name as shown to customers.
	StoreName string
	// Now is the time of rendering, for relative dates ("expires in 3 days"). Zero means
	// the wall clock.
	Now time.Time
}

// Customer is the recipient's profile.
type Customer struct {
	ID, Email, Name, Stage string
	OrdersCount            int
	TotalSpent             float64
	Attributes             map[string]any
	// Points are the customer's loyalty points, e.g. {{.Customer.Points.Balance}}.
	Points Points
	// Tier is the customer's loyalty tier; "" for none.
	Tier string
}

// Points are a customer's loyalty points as an email shows them.
type Points struct {
	// Balance is the points balance.
	Balance int64
	// NextExpiry is when the earliest-expiring points expire; zero when
	// none do (test it with {{if not .Customer.Points.NextExpiry.IsZero}}).
	NextExpiry time.Time
}

// Event is an event a customer did.
type Event struct {
	Type       string
	Properties map[string]any
	OccurredAt time.Time
}

// Coupon is a discount code made for the customer. Kind is "percent" (Value is a percentage),
// "amount" (Value is money off) or "free_shipping" (Value unused).
type Coupon struct {
	Code, Kind string
	Value      float64
	ExpiresAt  time.Time
}

// Describe returns the coupon's benefit in words: "10% off", "5.00 off", "free shipping".
// An unknown kind is described as "a discount".
func (c Coupon) Describe() string {
	switch c.Kind {
	case "percent":
		return strconv.FormatFloat(c.Value, 'f', -1, 64) + "% off"
	case "amount":
		return strconv.FormatFloat(c.Value, 'f', 2, 64) + " off"
	case "free_shipping":
		return "free shipping"
	default:
		return "a discount"
	}
}

// DaysUntil returns the number of whole days, rounded up, from d.Now (or the wall clock) to t;
// 0 if t has passed.
func (d Data) DaysUntil(t time.Time) int {
	return daysUntil(t, d.Now)
}

// SampleData returns plausible data with every field set (a 15% coupon expiring in 7 days),
// used by Check and for previews.
func SampleData() Data {
	now := time.Date(2025, time.March, 14, 9, 30, 0, 0, time.UTC)
	return Data{
		Customer: Customer{
			ID: "cus_123", Email: "ada@example.com", Name: "Ada", Stage: "retention",
			OrdersCount: 3, TotalSpent: 182.5, Attributes: map[string]any{"plan": "plus"},
		},
		Event: &Event{
			Type:       "order_placed",
			Properties: map[string]any{"order_id": "ord_789", "total": 59.9},
			OccurredAt: now.Add(-time.Hour),
		},
		Coupon: &Coupon{
			Code: "THANKS-7Q2K", Kind: "percent", Value: 15,
			ExpiresAt: now.Add(7 * 24 * time.Hour),
		},
		Rule:           "sample-rule",
		UnsubscribeURL: "https://shop.example.com/unsubscribe?t=sample",
		StoreName:      "Example Shop",
		Now:            now,
	}
}

// New parses the embedded default templates, with files from overrideDir ("" for none)
// replacing defaults of the same name or adding templates. Only layout.html, layout.txt,
// *.html, *.txt and *.subject.txt files directly in overrideDir are read. Errors name the
// file: unreadable or unparsable files, and a template missing its .html or .txt file.
func New(overrideDir string) (*Set, error) {
	files := map[string]source{}
	if err := collect(files, defaultFS, "default", "default/"); err != nil {
		return nil, err
	}
	if overrideDir != "" {
		if err := collect(files, os.DirFS(overrideDir), ".", overrideDir+string(filepath.Separator)); err != nil {
			return nil, err
		}
	}
	return parse(files)
}

// source is one template file's text and where it came from (for error messages).
type source struct {
	text, origin string
}

func collect(files map[string]source, fsys fs.FS, dir, origin string) error {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return fmt.Errorf("templates: read %s: %w", origin, err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".html") || strings.HasSuffix(name, ".txt")) {
			continue
		}
		b, err := fs.ReadFile(fsys, pathJoin(dir, name))
		if err != nil {
			return fmt.Errorf("templates: read %s%s: %w", origin, name, err)
		}
		files[name] = source{text: string(b), origin: origin + name}
	}
	return nil
}

func pathJoin(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

func parse(files map[string]source) (*Set, error) {
	s := &Set{
		html:     map[string]*htmltemplate.Template{},
		text:     map[string]*texttemplate.Template{},
		subjects: map[string]*texttemplate.Template{},
	}

	lh, ok := files[layoutHTML]
	if !ok {
		return nil, fmt.Errorf("templates: no %s", layoutHTML)
	}
	baseHTML, err := htmltemplate.New(layoutHTML).Option("missingkey=error").Funcs(funcs()).Parse(lh.text)
	if err != nil {
		return nil, fmt.Errorf("templates: parse %s: %w", lh.origin, err)
	}
	lt, ok := files[layoutText]
	if !ok {
		return nil, fmt.Errorf("templates: no %s", layoutText)
	}
	baseText, err := newText(layoutText, lt.text)
	if err != nil {
		return nil, fmt.Errorf("templates: parse %s: %w", lt.origin, err)
	}

	names := map[string]bool{}
	for file := range files {
		if file == layoutHTML || file == layoutText {
			continue
		}
		name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(file, subjectSuffix), ".html"), ".txt")
		names[name] = true
	}
	for name := range names {
		h, okH := files[name+".html"]
		t, okT := files[name+".txt"]
		if !okH || !okT {
			return nil, fmt.Errorf("templates: template %q needs both %s.html and %s.txt", name, name, name)
		}

		ht, err := baseHTML.Clone()
		if err == nil {
			_, err = ht.New("content").Parse(h.text)
		}
		if err != nil {
			return nil, fmt.Errorf("templates: parse %s: %w", h.origin, err)
		}
		tt, err := baseText.Clone()
		if err == nil {
			_, err = tt.New("content").Parse(t.text)
		}
		if err != nil {
			return nil, fmt.Errorf("templates: parse %s: %w", t.origin, err)
		}
		htrees := map[string]*tparse.Tree{}
		for _, t := range ht.Templates() {
			htrees[t.Name()] = t.Tree
		}
		if err := checkTrees(htrees); err != nil {
			return nil, fmt.Errorf("templates: parse %s: %w", h.origin, err)
		}
		ttrees := map[string]*tparse.Tree{}
		for _, t := range tt.Templates() {
			ttrees[t.Name()] = t.Tree
		}
		if err := checkTrees(ttrees); err != nil {
			return nil, fmt.Errorf("templates: parse %s: %w", t.origin, err)
		}
		s.html[name], s.text[name] = ht, tt

		if sub, ok := files[name+subjectSuffix]; ok {
			st, err := newText(name+subjectSuffix, sub.text)
			if err != nil {
				return nil, fmt.Errorf("templates: parse %s: %w", sub.origin, err)
			}
			s.subjects[name] = st
		}
		s.names = append(s.names, name)
	}
	slices.Sort(s.names)
	return s, nil
}

func newText(name, text string) (*texttemplate.Template, error) {
	t, err := texttemplate.New(name).Option("missingkey=error").Funcs(funcs()).Parse(text)
	if err != nil {
		return nil, err
	}
	trees := map[string]*tparse.Tree{}
	for _, d := range t.Templates() {
		trees[d.Name()] = d.Tree
	}
	if err := checkTrees(trees); err != nil {
		return nil, fmt.Errorf("template: %s: %w", name, err)
	}
	return t, nil
}

// checkTrees applies the parse-time bounds to a template and the
// templates it defines.
func checkTrees(trees map[string]*tparse.Tree) error {
	for _, tr := range trees {
		if tr == nil {
			continue
		}
		if err := checkRanges(tr.Root); err != nil {
			return err
		}
	}
	return checkRecursion(trees)
}

// Names returns the template names, sorted.
func (s *Set) Names() []string {
	return slices.Clone(s.names)
}

// Has reports whether a template is named name.
func (s *Set) Has(name string) bool {
	_, ok := s.html[name]
	return ok
}

// Render renders template name with d. subject, if not empty, is a text/template (e.g.
// "{{.Coupon.Code}} is yours") used instead of the template's default subject. It errors
// (wrapping the sentinels above where they apply) on an unknown template, a missing subject or
// unsubscribe URL, a nil Coupon or Event the template uses, and any execution error such as
// a missing map key.
func (s *Set) Render(name, subject string, d Data) (Rendered, error) {
	return s.render(name, subject, d, true)
}

// Check renders template name with SampleData to find mistakes before send time. A template
// without a default subject passes: the rule must then give one (see CheckSubject).
func (s *Set) Check(name string) error {
	_, err := s.render(name, "", SampleData(), false)
	return err
}

// CheckSubject parses and renders a subject given by a rule with SampleData.
func (s *Set) CheckSubject(subject string) error {
	st, err := s.subjectTemplate(subject)
	if err != nil {
		return err
	}
	_, err = execText(st, SampleData())
	if err != nil {
		return fmt.Errorf("templates: subject %q: %w", subject, err)
	}
	return nil
}

func (s *Set) render(name, subject string, d Data, needSubject bool) (Rendered, error) {
	ht, ok := s.html[name]
	if !ok {
		return Rendered{}, fmt.Errorf("templates: render %q: %w", name, ErrUnknownTemplate)
	}
	if d.UnsubscribeURL == "" {
		return Rendered{}, fmt.Errorf("templates: render %q: %w", name, ErrNoUnsubscribeURL)
	}
	var r Rendered
	fail := func(part string, err error) (Rendered, error) {
		return Rendered{}, fmt.Errorf("templates: render %q %s: %w", name, part, nilDataError(err, d))
	}

	st := s.subjects[name]
	if subject != "" {
		var err error
		if st, err = s.subjectTemplate(subject); err != nil {
			return Rendered{}, err
		}
	}
	switch {
	case st != nil:
		sub, err := execText(st, d)
		if err != nil {
			return fail("subject", err)
		}
		r.Subject = strings.Join(strings.Fields(sub), " ")
		if r.Subject == "" && needSubject {
			return Rendered{}, fmt.Errorf("templates: render %q: %w", name, ErrNoSubject)
		}
	case needSubject:
		return Rendered{}, fmt.Errorf("templates: render %q: %w", name, ErrNoSubject)
	}

	buf := newBoundedWriter()
	if err := ht.Execute(buf, d); err != nil {
		return fail("html", err)
	}
	r.HTML = buf.String()
	text, err := execText(s.text[name], d)
	if err != nil {
		return fail("text", err)
	}
	r.Text = text
	// Every email carries its unsubscribe link in both bodies, whatever an
	// override layout says; a body without it is never sent.
	if !strings.Contains(r.Text, d.UnsubscribeURL) {
		return Rendered{}, fmt.Errorf("templates: render %q text: %w", name, ErrNoUnsubscribeLink)
	}
	if !strings.Contains(r.HTML, d.UnsubscribeURL) && !strings.Contains(r.HTML, html.EscapeString(d.UnsubscribeURL)) {
		return Rendered{}, fmt.Errorf("templates: render %q html: %w", name, ErrNoUnsubscribeLink)
	}
	return r, nil
}

// subjectTemplate parses (once, then from cache) a subject given by the caller.
func (s *Set) subjectTemplate(subject string) (*texttemplate.Template, error) {
	if t, ok := s.given.Load(subject); ok {
		return t.(*texttemplate.Template), nil
	}
	t, err := newText("subject", subject)
	if err != nil {
		return nil, fmt.Errorf("templates: parse subject %q: %w", subject, err)
	}
	s.given.Store(subject, t)
	return t, nil
}

func execText(t *texttemplate.Template, d Data) (string, error) {
	buf := newBoundedWriter()
	if err := t.Execute(buf, d); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// boundedWriter collects a rendered part, failing writes past
// MaxOutputBytes or MaxRenderTime.
type boundedWriter struct {
	buf      bytes.Buffer
	deadline time.Time
}

func newBoundedWriter() *boundedWriter {
	return &boundedWriter{deadline: time.Now().Add(MaxRenderTime)}
}

func (w *boundedWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > MaxOutputBytes {
		return 0, ErrTooLarge
	}
	if time.Now().After(w.deadline) {
		return 0, ErrTooSlow
	}
	return w.buf.Write(p)
}

func (w *boundedWriter) String() string { return w.buf.String() }

// nilDataError turns the template engine's error for an absent coupon or event into
// ErrNoCoupon or ErrNoEvent, keeping the original (which names the file position). The engine
// reports these as nil-pointer errors in several wordings, all naming the type or the field.
func nilDataError(err error, d Data) error {
	msg := err.Error()
	switch {
	case d.Coupon == nil && strings.Contains(msg, "Coupon"):
		return fmt.Errorf("%w (%v)", ErrNoCoupon, err)
	case d.Event == nil && strings.Contains(msg, "Event"):
		return fmt.Errorf("%w (%v)", ErrNoEvent, err)
	}
	return err
}

// funcs returns the helper functions available to every template.
func funcs() map[string]any {
	return map[string]any{
		"date": func(t time.Time) string { return t.Format("January 2, 2006") },
		"expiresIn": func(t, now time.Time) string {
			switch n := daysUntil(t, now); n {
			case 0:
				return "today"
			case 1:
				return "tomorrow"
			default:
				return "in " + strconv.Itoa(n) + " days"
			}
		},
		"money": func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) },
		"plural": func(n int, one, many string) string {
			if n == 1 {
				return one
			}
			return many
		},
	}
}

func daysUntil(t, now time.Time) int {
	if now.IsZero() {
		now = time.Now()
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Hours() / 24))
}
