package server_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoDispatchRuntimeDependency keeps the HTTP package and the dry run
// off the dispatch runtime: they share contracts (jobs, rules.Holder,
// message, store) with the workers, never the workers themselves. (The dry
// run's preview returns a channels.Message, the type a channel sends, so
// channels is allowed; the workers that send are not.)
func TestNoDispatchRuntimeDependency(t *testing.T) {
	t.Parallel()
	forbidden := []string{"github.com/ciclohq/ciclo/worker"}
	for _, pkg := range []string{"github.com/ciclohq/ciclo/server", "github.com/ciclohq/ciclo/internal/dryrun"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		for _, f := range forbidden {
			for _, d := range deps {
				if d == f {
					t.Errorf("%s depends on %s: move what it needs into a shared package (jobs, store, rules, message)", pkg, f)
				}
			}
		}
	}
}
