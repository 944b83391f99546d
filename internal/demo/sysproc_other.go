//go:build !linux

package main

import "syscall"

// sysProcAttr puts a daemon in its own process group. Only Linux has a
// parent-death signal: elsewhere a demo killed with SIGKILL leaves its
// daemons running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
