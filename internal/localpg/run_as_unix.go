//go:build unix

package localpg

import (
	"os/exec"
	"syscall"
)

// runAs makes cmd run as u. Setting the credential directly (rather than
// wrapping in runuser or su) needs neither program nor shell quoting; an
// empty Groups drops root's supplementary groups.
func runAs(cmd *exec.Cmd, u *osUser) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}},
	}
	return nil
}
