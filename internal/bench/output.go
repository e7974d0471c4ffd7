package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Output formats.
const (
	FormatTable = "table"
	FormatJSON  = "json"
)

// CheckFormat validates --format.
func CheckFormat(f string) error {
	if f != FormatTable && f != FormatJSON {
		return fmt.Errorf("--format %q: use table or json", f)
	}
	return nil
}

// Write writes res as a table or as JSON.
func Write(w io.Writer, res *Result, format string) error {
	if format == FormatJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	m := res.Machine
	kind := "full"
	if res.Quick {
		kind = "quick (CI-sized)"
	}
	fmt.Fprintf(w, "ciclo bench, %s run, %d run(s) per row, %s, %.0f s\n", kind, res.Runs, m.Started, res.Seconds)
	fmt.Fprintf(w, "machine: %d CPUs, %.1f GiB, %s, %s; load average %s before, %s after\n",
		m.CPUs, m.MemoryGiB, m.Postgres, m.Go, m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(w, "database: %s, in %d schemas %s* of its own, created and dropped; nothing else in it was read or written\n\n",
		res.Database, len(res.Schemas), schemaPrefix)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROW\tSIZE\tCICLO\tBASELINE\tRATIO (MIN–MAX)\tTARGET\tPEAK RSS")
	for _, r := range res.Rows {
		target := "—"
		if r.Met != nil {
			target = r.Target + map[bool]string{true: " ok", false: " MISSED"}[*r.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s %s\t%.2f (%.2f–%.2f)\t%s\t%.0f MiB\n", r.Name, r.Size, num(r.Value), r.Unit,
			num(r.BaselineValue), r.Baseline, r.Ratio, r.RatioMin, r.RatioMax, target, r.PeakRSSMiB)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var notes []string
	for _, r := range res.Rows {
		if r.Notes != "" {
			notes = append(notes, r.Name+": "+r.Notes)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(notes, "\n"))
	}
	return nil
}

// num writes a figure with three significant digits at most, with
// thousands separators: 12,300 or 0.532.
func num(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	if math.Abs(v) < 100 {
		return strconv.FormatFloat(v, 'f', max(0, 2-int(math.Floor(math.Log10(math.Abs(v))))), 64)
	}
	mag := math.Pow(10, math.Floor(math.Log10(math.Abs(v)))-2)
	s := strconv.FormatFloat(math.Round(v/mag)*mag, 'f', 0, 64)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
