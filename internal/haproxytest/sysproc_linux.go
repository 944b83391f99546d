package haproxytest

import "syscall"

// sysProcAttr kills the haproxy master if the test process dies without
// running its cleanups (a -timeout panic, a crash): nothing is left
// behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
