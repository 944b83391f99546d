// Package freeport picks loopback TCP addresses for servers that cannot
// be handed an open listener (etcd, haproxy, daemons started as
// processes):
//
//	addr, err := freeport.Addr() // "127.0.0.1:24731"
//
// A port is chosen at random below Linux's ephemeral range (32768+),
// checked by binding it, and released. Ports from listen(":0") come from
// the ephemeral range, which outgoing connections also draw their source
// ports from, so under load one of them can take the port between the
// check and the server's bind; below the range only another explicit
// bind can. Safe for concurrent use.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
)

// Range of ports Addr picks from.
const (
	Low  = 20000
	High = 32767
)

// Addr returns "127.0.0.1:PORT" for a port that was free when checked.
func Addr() (string, error) {
	var last error
	for range 100 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(Low+rand.IntN(High-Low+1)))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			last = err
			continue
		}
		l.Close()
		return addr, nil
	}
	return "", fmt.Errorf("freeport: no free port in %d-%d: %w", Low, High, last)
}
