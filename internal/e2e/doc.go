// Package e2e holds end-to-end tests that build the registrar and
// templater binaries and run them as real processes against a real etcd
// (embedded, or Debian's etcd 3.4 for the compatibility test), real HTTP
// health endpoints and real files. It has no non-test code.
package e2e
