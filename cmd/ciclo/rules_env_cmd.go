package main

//go:generate sh -c "go run . rules env --markdown > ../../docs/rules.md"

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/rules"
)

func newRulesEnvCmd() *cobra.Command {
	var markdown bool
	cmd := &cobra.Command{
		Use:   "env",
		Short: "List every field, type and function a rule's when can use",
		Long: `env prints the reference of the expression environment: the customer and
event fields, now, and the helper functions, with their types. It is
generated from the Go types the rule compiler checks conditions against,
so it is always what this ciclo accepts. --markdown prints docs/rules.md.`,
		Example: "  ciclo rules env\n  ciclo rules env --markdown > docs/rules.md",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ref := rules.EnvReference()
			if markdown {
				_, err := fmt.Fprint(cmd.OutOrStdout(), ref.Markdown())
				return err
			}
			_, err := fmt.Fprint(cmd.OutOrStdout(), ref.Text())
			return err
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print the Markdown page (docs/rules.md)")
	return cmd
}
