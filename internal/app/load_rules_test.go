package app_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ciclohq/ciclo/internal/app"
)

func TestLoadRules(t *testing.T) {
	t.Parallel()

	const header = "version: 1\ntemplates_dir: tpl\nrules:\n"
	tests := []struct {
		name    string
		rules   string
		wantErr string
	}{
		{
			name:  "OverrideTemplate",
			rules: "  - name: r\n    on: x\n    actions:\n      - email: { template: custom, subject: \"Hi {{.Customer.Name}}\" }\n",
		},
		{
			name:    "UnknownTemplate",
			rules:   "  - name: r\n    on: x\n    actions:\n      - email: { template: nope, subject: \"Hi\" }\n",
			wantErr: "nope",
		},
		{
			name:    "SubjectMissingVariable",
			rules:   "  - name: r\n    on: x\n    actions:\n      - email: { template: custom, subject: \"Hi {{.Customer.Nickname}}\" }\n",
			wantErr: "subject does not render",
		},
		{
			name:    "NoSubject",
			rules:   "  - name: r\n    on: x\n    actions:\n      - email: { template: custom }\n",
			wantErr: "no default subject",
		},
		{
			name:    "CouponWithoutCouponAction",
			rules:   "  - name: r\n    on: x\n    actions:\n      - email: { template: coupon_only, subject: \"Hi\" }\n",
			wantErr: "shows a coupon but the rule issues none",
		},
		{
			name:  "CouponWithCouponAction",
			rules: "  - name: r\n    on: x\n    actions:\n      - coupon: { percent: 10 }\n      - email: { template: coupon_only, subject: \"Hi\" }\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(dir, "tpl"), 0o755))
			files := map[string]string{
				"rules.yaml":           header + tt.rules,
				"tpl/custom.html":      "<p>Custom for {{.Customer.Name}}</p>",
				"tpl/custom.txt":       "Custom for {{.Customer.Name}}",
				"tpl/coupon_only.html": "<p>{{.Coupon.Code}}</p>",
				"tpl/coupon_only.txt":  "{{.Coupon.Code}}",
			}
			for name, content := range files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
			}
			rs, tset, err := app.LoadRules(filepath.Join(dir, "rules.yaml"))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, rs.Rules, 1)
			require.True(t, tset.Has("custom"), "override directory read")
		})
	}
}

func TestLoadRulesMissingFile(t *testing.T) {
	t.Parallel()
	_, _, err := app.LoadRules(filepath.Join(t.TempDir(), "rules.yaml"))
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorContains(t, err, `rules.yaml" not found`)
}

// TestLoadRulesHugeFile: a 10 GB rules file (sparse: it takes no disk) is
// refused by LoadRules and CheckRules with the size limit, after reading
// only the first MiB of it.
func TestLoadRulesHugeFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	f, err := os.Create(path)
	require.NoError(t, err)
	_, err = f.WriteString("version: 1\nrules: []\n#")
	require.NoError(t, err)
	require.NoError(t, f.Truncate(10<<30))
	require.NoError(t, f.Close())

	_, _, err = app.LoadRules(path)
	require.ErrorContains(t, err, "rules file is larger than 1048576 bytes")
	all, err := app.CheckRules(path, false)
	require.NoError(t, err)
	require.NotEmpty(t, all)
	require.Contains(t, all[0].Error(), "rules file is larger than 1048576 bytes")
}
