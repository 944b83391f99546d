// Package systemd holds rewire's systemd units (the *.service files beside
// this one) and the test that keeps them least-privileged:
// `systemd-analyze security --offline=true` must rate the registrar's unit
// "OK" or better and the templater's "MEDIUM" or better, and each unit must
// keep the settings the deployment relies on (a dedicated user,
// NoNewPrivileges, ProtectSystem=strict, no capabilities, a SIGHUP reload).
// There is no Go code here; the package exists for its test.
package systemd
