package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no command leaves goroutines behind (wait runs a
// watcher; every command closes its etcd client).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
