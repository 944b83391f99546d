//go:build !linux

package registrar

import (
	"errors"
	"net"
)

// peerCred is implemented on Linux only; elsewhere socket writes are
// refused (use the token).
func peerCred(net.Conn) (peer, error) {
	return peer{}, errors.New("peer credentials are supported on Linux only")
}
