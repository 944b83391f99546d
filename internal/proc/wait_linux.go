package proc

import (
	"syscall"
	"unsafe"
)

// waitid(2) arguments, from <sys/wait.h>.
const (
	pPID    = 1
	wExited = 0x4
	wNowait = 0x1000000
)

// waitExited blocks until process pid has exited, without reaping it
// (waitid with WNOWAIT): it stays a zombie, its PID reserved, until
// exec.Cmd.Wait reaps it. It reports whether it could wait so.
func waitExited(pid int) bool {
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), wExited|wNowait, 0, 0)
		if errno != syscall.EINTR {
			return errno == 0
		}
	}
}
