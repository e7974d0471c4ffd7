package templates_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/templates"
)

var defaultNames = []string{
	"bonus_expiring", "first_order_bonus", "loyalty_reward", "points_expiring", "repeat_purchase", "welcome", "win_back",
}

var couponNames = []string{"bonus_expiring", "first_order_bonus", "loyalty_reward", "win_back"}

// writeFiles writes name → content into a new temporary directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	return dir
}

func TestSet(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) *templates.Set {
		t.Helper()
		set, err := templates.New("")
		require.NoError(t, err)
		return set
	}

	t.Run("DefaultsRenderWithSampleData", func(t *testing.T) {
		t.Parallel()
		set := setup(t)
		require.Equal(t, defaultNames, set.Names())

		d := templates.SampleData()
		for _, name := range defaultNames {
			require.True(t, set.Has(name))
			require.NoError(t, set.Check(name), name)

			r, err := set.Render(name, "", d)
			require.NoError(t, err, name)
			require.NotEmpty(t, r.Subject, name)
			require.NotContains(t, r.Subject, "\n", name)
			require.Contains(t, r.HTML, `href="`+d.UnsubscribeURL+`"`, name)
			require.Contains(t, r.Text, "Unsubscribe: "+d.UnsubscribeURL, name)
			require.Contains(t, r.HTML, "Hi Ada,", name)
			require.Contains(t, r.Text, "Hi Ada,", name)
		}
	})

	t.Run("CouponTemplatesShowCoupon", func(t *testing.T) {
		t.Parallel()
		set := setup(t)
		d := templates.SampleData()
		for _, name := range couponNames {
			r, err := set.Render(name, "", d)
			require.NoError(t, err, name)
			for _, body := range []string{r.HTML, r.Text} {
				require.Contains(t, body, "THANKS-7Q2K", name)
				require.Contains(t, body, "15% off", name)
				require.Contains(t, body, "March 21, 2025", name)
			}
		}
		r, err := set.Render("bonus_expiring", "", d)
		require.NoError(t, err)
		require.Equal(t, "Your 15% off code expires in 7 days", r.Subject)
		require.Contains(t, r.Text, "expires in 7 days")
	})

	t.Run("NilCouponIsAnError", func(t *testing.T) {
		t.Parallel()
		set := setup(t)
		d := templates.SampleData()
		d.Coupon = nil
		for _, name := range couponNames {
			_, err := set.Render(name, "", d)
			require.ErrorIs(t, err, templates.ErrNoCoupon, name)
			require.ErrorContains(t, err, name)
		}
		_, err := set.Render("welcome", "", d)
		require.NoError(t, err)
	})

	t.Run("NilEventIsAnError", func(t *testing.T) {
		t.Parallel()
		set := setup(t)
		d := templates.SampleData()
		d.Event = nil
		_, err := set.Render("welcome", "You did {{.Event.Type}}", d)
		require.ErrorIs(t, err, templates.ErrNoEvent)
	})

	t.Run("SubjectArgumentOverridesDefault", func(t *testing.T) {
		t.Parallel()
		set := setup(t)
		r, err := set.Render("win_back", "  Come back:\n{{.Coupon.Code}} ", templates.SampleData())
		require.NoError(t, err)
		require.Equal(t, "Come back: THANKS-7Q2K", r.Subject)
	})

	t.Run("MissingKeyIsAnError", func(t *testing.T) {
		t.Parallel()
		set := setup(t)
		_, err := set.Render("welcome", "{{.Customer.Attributes.nickname}}", templates.SampleData())
		require.ErrorContains(t, err, "nickname")
		require.Error(t, set.CheckSubject("{{.Event.Properties.nope}}"))
		require.Error(t, set.CheckSubject("{{.Custmer.Name}}"))
		require.NoError(t, set.CheckSubject("Hi {{.Customer.Name}}"))
		require.ErrorContains(t, set.CheckSubject("{{.Customer.Name"), "parse subject")
	})

	t.Run("NoSubject", func(t *testing.T) {
		t.Parallel()
		set, err := templates.New(writeFiles(t, map[string]string{
			"plain.html": "<p>Hello</p>", "plain.txt": "Hello",
		}))
		require.NoError(t, err)
		require.NoError(t, set.Check("plain"), "a rule may give the subject")
		_, err = set.Render("plain", "", templates.SampleData())
		require.ErrorIs(t, err, templates.ErrNoSubject)
		r, err := set.Render("plain", "Hello {{.Customer.Name}}", templates.SampleData())
		require.NoError(t, err)
		require.Equal(t, "Hello Ada", r.Subject)
	})

	t.Run("NoUnsubscribeURL", func(t *testing.T) {
		t.Parallel()
		set := setup(t)
		d := templates.SampleData()
		d.UnsubscribeURL = ""
		_, err := set.Render("welcome", "", d)
		require.ErrorIs(t, err, templates.ErrNoUnsubscribeURL)
	})

	t.Run("UnknownTemplate", func(t *testing.T) {
		t.Parallel()
		set := setup(t)
		require.False(t, set.Has("nope"))
		_, err := set.Render("nope", "x", templates.SampleData())
		require.ErrorIs(t, err, templates.ErrUnknownTemplate)
	})

	t.Run("HTMLIsEscaped", func(t *testing.T) {
		t.Parallel()
		set := setup(t)
		d := templates.SampleData()
		d.Customer.Name = `<script>alert(1)</script>`
		r, err := set.Render("welcome", "", d)
		require.NoError(t, err)
		require.NotContains(t, r.HTML, "<script>")
		require.Contains(t, r.HTML, "&lt;script&gt;")
	})

	t.Run("OverrideDirReplacesAndAdds", func(t *testing.T) {
		t.Parallel()
		set, err := templates.New(writeFiles(t, map[string]string{
			"welcome.html":       "<p>Custom welcome, {{.Customer.Name}}!</p>",
			"promo.html":         "<p>Promo for {{.Customer.Email}}</p>",
			"promo.txt":          "Promo for {{.Customer.Email}}",
			"promo.subject.txt":  "Promo {{.Rule}}",
			"README.md":          "ignored",
			".hidden.html":       "{{ broken",
			"layout.txt.example": "ignored",
		}))
		require.NoError(t, err)
		require.Equal(t, append([]string{"bonus_expiring", "first_order_bonus", "loyalty_reward", "points_expiring", "promo"},
			"repeat_purchase", "welcome", "win_back"), set.Names())

		d := templates.SampleData()
		r, err := set.Render("welcome", "", d)
		require.NoError(t, err)
		require.Contains(t, r.HTML, "Custom welcome, Ada!")
		require.Contains(t, r.HTML, d.UnsubscribeURL, "override still gets the layout footer")
		require.Contains(t, r.Text, "Thanks for joining", "welcome.txt not overridden")
		require.Equal(t, "Welcome to Example Shop", r.Subject)

		r, err = set.Render("promo", "", d)
		require.NoError(t, err)
		require.Equal(t, "Promo sample-rule", r.Subject)
		require.Contains(t, r.Text, "Promo for ada@example.com")
		require.Contains(t, r.Text, d.UnsubscribeURL)
	})

	t.Run("OverrideLayout", func(t *testing.T) {
		t.Parallel()
		set, err := templates.New(writeFiles(t, map[string]string{
			"layout.txt": "{{block \"content\" .}}{{end}}\nBye: {{.UnsubscribeURL}}",
		}))
		require.NoError(t, err)
		r, err := set.Render("welcome", "", templates.SampleData())
		require.NoError(t, err)
		require.Contains(t, r.Text, "Bye: https://shop.example.com/unsubscribe?t=sample")
	})

	t.Run("OverrideLayoutWithoutUnsubscribeLinkFails", func(t *testing.T) {
		t.Parallel()
		set, err := templates.New(writeFiles(t, map[string]string{
			"layout.html": "<div>{{block \"content\" .}}{{end}}</div><p>Our brand footer</p>",
		}))
		require.NoError(t, err)
		require.ErrorIs(t, set.Check("welcome"), templates.ErrNoUnsubscribeLink)
		_, err = set.Render("welcome", "", templates.SampleData())
		require.ErrorIs(t, err, templates.ErrNoUnsubscribeLink)
	})

	t.Run("OverrideCheckFindsMissingKey", func(t *testing.T) {
		t.Parallel()
		set, err := templates.New(writeFiles(t, map[string]string{
			"welcome.txt": "Plan: {{.Customer.Attributes.tier}}",
		}))
		require.NoError(t, err)
		require.ErrorContains(t, set.Check("welcome"), `"tier"`)
	})

	t.Run("LoadErrors", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name    string
			files   map[string]string
			wantErr string
		}{
			{"HTMLSyntax", map[string]string{"welcome.html": "{{ .Customer.Name"}, "welcome.html"},
			{"TextSyntax", map[string]string{"welcome.txt": "{{end}}"}, "welcome.txt"},
			{"SubjectSyntax", map[string]string{"welcome.subject.txt": "{{if}}"}, "welcome.subject.txt"},
			{"UnknownFunction", map[string]string{"welcome.txt": "{{shout .StoreName}}"}, "welcome.txt"},
			{"MissingText", map[string]string{"promo.html": "<p>hi</p>"}, `"promo" needs both promo.html and promo.txt`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				dir := writeFiles(t, tt.files)
				_, err := templates.New(dir)
				require.ErrorContains(t, err, tt.wantErr)
			})
		}
		_, err := templates.New(filepath.Join(t.TempDir(), "absent"))
		require.Error(t, err)
	})
}

func TestCouponDescribe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		coupon templates.Coupon
		want   string
	}{
		{"Percent", templates.Coupon{Kind: "percent", Value: 10}, "10% off"},
		{"PercentFraction", templates.Coupon{Kind: "percent", Value: 12.5}, "12.5% off"},
		{"Amount", templates.Coupon{Kind: "amount", Value: 5}, "5.00 off"},
		{"FreeShipping", templates.Coupon{Kind: "free_shipping"}, "free shipping"},
		{"Unknown", templates.Coupon{Kind: "mystery", Value: 3}, "a discount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.coupon.Describe())
		})
	}
}

func TestDataDaysUntil(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	d := templates.Data{Now: now}
	tests := []struct {
		name string
		at   time.Time
		want int
	}{
		{"Past", now.Add(-time.Hour), 0},
		{"Now", now, 0},
		{"OneHour", now.Add(time.Hour), 1},
		{"ExactlyTwoDays", now.Add(48 * time.Hour), 2},
		{"TwoDaysAndABit", now.Add(49 * time.Hour), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, d.DaysUntil(tt.at))
		})
	}
}
