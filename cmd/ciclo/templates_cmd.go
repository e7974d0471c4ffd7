package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/dryrun"
	"github.com/ciclohq/ciclo/rules"
	"github.com/ciclohq/ciclo/templates"
)

func newTemplatesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "templates",
		Short: "Preview email templates",
	}
	cmd.AddCommand(newTemplatesPreviewCmd())
	return cmd
}

func newTemplatesPreviewCmd() *cobra.Command {
	var dbURL, customer, out, subject, rulesPath, from, at string
	var asTemplate bool
	cmd := &cobra.Command{
		Use:   "preview RULE|TEMPLATE --customer ID [--out file.eml]",
		Short: "Render what a rule would email a real customer, or a template, without sending it",
		Long: `preview renders an email for a customer of the live database, with a
placeholder unsubscribe link. It prints the subject and the text body, or
with --out writes the full message (.eml, both bodies and headers) exactly
as the email channel would send it.

With a rules file (--rules, or CICLO_RULES), NAME is looked up as a rule
first: preview then shows what that rule would send the customer. Its first
email action's template and subject; the coupon it issues as it would be
issued (a sample code in the real format, the action's kind and value,
expiring expires_in from --at), or none when it issues none (a rule that
reads customer.coupon_expires_at gets the customer's unredeemed coupon that
expires first, as dispatch does); the customer's latest event of the rule's
type, or no event for a scheduled rule.

Otherwise, or with --template, NAME is a template, rendered with the
template's default subject, the customer's latest event and latest coupon
(a placeholder coupon PREVIEW-CODE when they have none).

Templates are the embedded defaults, or those of the rules file's
templates_dir. The database is only read, in a READ ONLY transaction;
nothing is sent.`,
		Example: "  ciclo templates preview win-back --rules rules.yaml --customer c-42\n" +
			"  ciclo templates preview win_back --customer c-42 --out win_back.eml\n" +
			"  ciclo templates preview welcome --template --rules rules.yaml --customer c-42",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if customer == "" {
				return fmt.Errorf("--customer is required")
			}
			when, err := parseAt(at)
			if err != nil {
				return err
			}
			opts := dryrun.PreviewOptions{Subject: subject, CustomerID: customer, From: from, At: when}
			tset, err := templates.New("")
			if rulesPath != "" {
				var rs *rules.RuleSet
				if rs, tset, err = app.LoadRules(rulesPath); err == nil && !asTemplate {
					opts.Rule = rs.Rule(args[0])
				}
			}
			if err != nil {
				return err
			}
			if opts.Rule == nil {
				if !slices.Contains(tset.Names(), args[0]) {
					what := "template"
					if rulesPath != "" && !asTemplate {
						what = "rule or template"
					}
					return fmt.Errorf("unknown %s %q: templates are %s", what, args[0], strings.Join(tset.Names(), ", "))
				}
				opts.Template = args[0]
			}
			ctx := cmd.Context()
			pool, err := openDB(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			msg, err := dryrun.Preview(ctx, pool, tset, opts)
			if err != nil {
				return err
			}
			if out == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "To: %s <%s>\nSubject: %s\n\n%s", msg.ToName, msg.To, msg.Subject, msg.Text)
				return nil
			}
			var buf bytes.Buffer
			if err := channels.WriteEML(&buf, msg); err != nil {
				return err
			}
			if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				return fmt.Errorf("write preview: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d bytes): %q to %s\n", out, buf.Len(), msg.Subject, msg.To)
			return nil
		},
	}
	dbFlag(cmd, &dbURL)
	cmd.Flags().StringVar(&customer, "customer", "", "id of the recipient (required)")
	cmd.Flags().StringVar(&out, "out", "", "write the whole message to this .eml file instead of printing the text")
	cmd.Flags().StringVar(&subject, "subject", "", "subject template to use instead of the rule's or template's")
	cmd.Flags().StringVar(&rulesPath, "rules", env("CICLO_RULES", ""), "rules file whose rules and templates_dir to use (env CICLO_RULES; default: none, the embedded templates)")
	cmd.Flags().BoolVar(&asTemplate, "template", false, "NAME is a template even when a rule has that name")
	cmd.Flags().StringVar(&from, "from", env("CICLO_FROM", app.FromDefault), "sender shown in the message (env CICLO_FROM)")
	cmd.Flags().StringVar(&at, "at", "", "rendering time, RFC 3339 or YYYY-MM-DD (default now)")
	return cmd
}

// formatTime prints times in the timeline and previews.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
