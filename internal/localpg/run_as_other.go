//go:build !unix

package localpg

import (
	"fmt"
	"os/exec"
)

// runAs is only needed when running as root, which only Unix has.
func runAs(_ *exec.Cmd, u *osUser) error {
	return fmt.Errorf("cannot run Postgres as user %s on this system; set DATABASE_URL", u.name)
}
