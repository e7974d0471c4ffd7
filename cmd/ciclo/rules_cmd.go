package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ciclohq/ciclo/internal/app"
	"github.com/ciclohq/ciclo/rules"
)

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Check, test, diff and document rules files",
	}
	cmd.AddCommand(newRulesCheckCmd(), newRulesTestCmd(), newRulesDiffCmd(), newRulesEnvCmd(), newRulesRunCmd())
	return cmd
}

// checkFinding is one error or warning in `rules check --format json`.
type checkFinding struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Rule     string `json:"rule,omitempty"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Hint     string `json:"hint,omitempty"`
}

func newRulesCheckCmd() *cobra.Command {
	var (
		format          string
		allowMissingEnv bool
	)
	cmd := &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate rules files without touching a database",
		Long: `check parses and compiles each rules file, and renders every email
template a rule names with sample data. It prints every problem found as
file:line:col: rule "name": message (hint), and exits 1 if any is an error.
Every problem is reported in one run: an error in one rule does not hide
the others, nor the template problems of other rules. Warnings (such as a
scheduled rule without a cooldown, or an event property compared as a
number without a guard) do not fail the check.

A ${NAME} reference (webhook url and secret) must be set in the
environment, as serve needs it; with --allow-missing-env an unset one is a
warning instead and its value is not checked (for CI without the secrets).`,
		Example: "  ciclo rules check rules.example.yaml\n  ciclo rules check --format json rules/*.yaml\n  ciclo rules check --allow-missing-env rules.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: use text or json", format)
			}
			findings, failed := checkFiles(args, allowMissingEnv)
			if err := printFindings(cmd.OutOrStdout(), format, findings, len(args)); err != nil {
				return err
			}
			if failed {
				return errSilent
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	cmd.Flags().BoolVar(&allowMissingEnv, "allow-missing-env", false, "report an unset ${NAME} as a warning, not an error")
	return cmd
}

// checkFiles checks each file and collects its errors and warnings.
func checkFiles(paths []string, allowMissingEnv bool) (findings []checkFinding, failed bool) {
	for _, path := range paths {
		all, err := app.CheckRules(path, allowMissingEnv)
		for _, e := range all {
			findings = append(findings, finding(e))
			failed = failed || !e.Warning
		}
		if err != nil {
			findings = append(findings, checkFinding{File: path, Severity: "error", Message: err.Error()})
			failed = true
		}
	}
	return findings, failed
}

func finding(e *rules.LoadError) checkFinding {
	sev := "error"
	if e.Warning {
		sev = "warning"
	}
	return checkFinding{File: e.File, Line: e.Line, Column: e.Column, Rule: e.Rule, Severity: sev, Message: e.Message, Hint: e.Hint}
}

func printFindings(w io.Writer, format string, findings []checkFinding, numFiles int) error {
	if format == "json" {
		if findings == nil {
			findings = []checkFinding{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(findings)
	}
	errs := 0
	for _, f := range findings {
		le := rules.LoadError{File: f.File, Line: f.Line, Column: f.Column, Rule: f.Rule, Message: f.Message, Hint: f.Hint, Warning: f.Severity == "warning"}
		if f.Line == 0 {
			fmt.Fprintf(w, "%s: %s\n", f.File, f.Message)
		} else {
			fmt.Fprintln(w, le.Error())
		}
		if f.Severity == "error" {
			errs++
		}
	}
	if errs == 0 {
		fmt.Fprintf(w, "ok: %d file(s), %d warning(s)\n", numFiles, len(findings))
	} else {
		fmt.Fprintf(w, "%d error(s), %d warning(s)\n", errs, len(findings)-errs)
	}
	return nil
}
