package main

import "syscall"

// sysProcAttr puts a daemon in its own process group and has the kernel
// send it SIGTERM if the demo dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
