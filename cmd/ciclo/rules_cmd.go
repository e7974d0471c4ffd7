package main

import (
	"encoding/json"
	"errors"
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
	cmd.AddCommand(newRulesCheckCmd(), newRulesTestCmd(), newRulesDiffCmd(), newRulesEnvCmd())
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
	var format string
	cmd := &cobra.Command{
		Use:   "check FILE...",
		Short: "Validate rules files without touching a database",
		Long: `check parses and compiles each rules file, and renders every email
template a rule names with sample data. It prints every problem found as
file:line:col: rule "name": message (hint), and exits 1 if any is an error.
Warnings (such as a scheduled rule without a cooldown) do not fail the check.`,
		Example: "  ciclo rules check rules.example.yaml\n  ciclo rules check --format json rules/*.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: use text or json", format)
			}
			findings, failed := checkFiles(args)
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
	return cmd
}

// checkFiles loads each file and collects its errors and warnings.
func checkFiles(paths []string) (findings []checkFinding, failed bool) {
	for _, path := range paths {
		rs, _, err := app.LoadRules(path)
		var les *rules.LoadErrors
		switch {
		case errors.As(err, &les):
			for _, e := range *les {
				findings = append(findings, finding(e))
				failed = failed || !e.Warning
			}
		case err != nil:
			findings = append(findings, checkFinding{File: path, Severity: "error", Message: err.Error()})
			failed = true
		default:
			for _, w := range rs.Warnings {
				findings = append(findings, finding(w))
			}
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
