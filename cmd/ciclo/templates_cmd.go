package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/channels"
	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/internal/dryrun"
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
	cmd := &cobra.Command{
		Use:   "preview TEMPLATE --customer ID [--out file.eml]",
		Short: "Render an email template for a real customer, without sending it",
		Long: `preview renders TEMPLATE for a customer of the live database, with their
latest event and latest coupon (a placeholder coupon PREVIEW-CODE when they
have none) and a placeholder unsubscribe link. It prints the subject and
the text body, or with --out writes the full message (.eml, both bodies and
headers) exactly as the email channel would send it.

Templates are the embedded defaults, or those of --rules FILE's
templates_dir. The database is only read, in a READ ONLY transaction;
nothing is sent.`,
		Example: "  ciclo templates preview win_back --customer c-42\n  ciclo templates preview win_back --customer c-42 --out win_back.eml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if customer == "" {
				return fmt.Errorf("--customer is required")
			}
			when, err := parseAt(at)
			if err != nil {
				return err
			}
			tset, err := loadTemplates(rulesPath)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			pool, err := openDB(ctx, dbURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			msg, err := dryrun.Preview(ctx, pool, tset, dryrun.PreviewOptions{
				Template: args[0], Subject: subject, CustomerID: customer, From: from, At: when,
			})
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
	cmd.Flags().StringVar(&subject, "subject", "", "subject template to use instead of the template's default")
	cmd.Flags().StringVar(&rulesPath, "rules", "", "rules file whose templates_dir to use (default: the embedded templates)")
	cmd.Flags().StringVar(&from, "from", env("CICLO_FROM", app.FromDefault), "sender shown in the message (env CICLO_FROM)")
	cmd.Flags().StringVar(&at, "at", "", "rendering time, RFC 3339 or YYYY-MM-DD (default now)")
	return cmd
}

// loadTemplates loads the template set a rules file uses, or the defaults.
func loadTemplates(rulesPath string) (*templates.Set, error) {
	if rulesPath == "" {
		return templates.New("")
	}
	_, tset, err := app.LoadRules(rulesPath)
	return tset, err
}

// formatTime prints times in the timeline and previews.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
