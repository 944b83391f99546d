// Package haproxytest runs the real haproxy binary for tests: Check
// validates a config with `haproxy -c`, Start runs a master-worker haproxy
// that t.Cleanup stops. Import it only from _test.go files.
//
//	haproxytest.Binary(t) // skips without haproxy (fails instead when $CI is set) and with -short
//	if err := haproxytest.Check(t, cfgPath); err != nil {
//		t.Fatal(err) // the error carries haproxy's output
//	}
//	p := haproxytest.Start(t, cfgPath)
//	// rewrite cfgPath, then:
//	if err := p.Reload(); err != nil { // waits for the new worker
//		t.Fatal(err)
//	}
//
// A Proc is owned by the test that started it. Its methods may be called
// from any goroutine; Start's process and the goroutine that waits for it
// are gone when the test's cleanup returns.
package haproxytest
