package haproxy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sentinel errors. A *CommandError unwraps to one of the ErrX that name
// HAProxy's answers, so callers check with errors.Is and never look at the
// text themselves.
var (
	// ErrRefused is a refusal (severity error or worse) whose text is not
	// one of the known ones below.
	ErrRefused = errors.New("haproxy: command refused")
	// ErrNoSuchBackend: "No such backend." or "Can't find backend.".
	ErrNoSuchBackend = errors.New("haproxy: no such backend")
	// ErrNoSuchServer: "No such server.".
	ErrNoSuchServer = errors.New("haproxy: no such server")
	// ErrPermissionDenied: the stats socket is not "level admin".
	ErrPermissionDenied = errors.New("haproxy: permission denied")
	// ErrUnknownCommand: HAProxy does not know the command (it answers
	// with a list of commands, at severity "info").
	ErrUnknownCommand = errors.New("haproxy: unknown command")
	// ErrServerExists: add server with a name the backend already has.
	ErrServerExists = errors.New("haproxy: server already exists")
	// ErrNotInMaintenance: del server on a server that is not in
	// maintenance.
	ErrNotInMaintenance = errors.New("haproxy: server is not in maintenance")
	// ErrServerBusy: del server on a server that still has active, idle
	// or queued connections. Retrying later can succeed.
	ErrServerBusy = errors.New("haproxy: server still has connections")
	// ErrServerReferenced: del server on a server that other
	// configuration elements (track, use-server...) point to.
	ErrServerReferenced = errors.New("haproxy: server is referenced by the configuration")
	// ErrStaticBackend: add server, or a weight change, on a backend with
	// a static load-balancing algorithm (static-rr, map-based hashing).
	ErrStaticBackend = errors.New("haproxy: backend uses a static load-balancing algorithm")
	// ErrNotDynamicOption: add server with a keyword that dynamic servers
	// do not accept (cookie, init-addr, resolvers...).
	ErrNotDynamicOption = errors.New("haproxy: option not accepted for dynamic servers")
	// ErrInvalidArgument: a malformed address, port, weight, state or
	// keyword.
	ErrInvalidArgument = errors.New("haproxy: invalid argument")

	// ErrInvalidCommand is returned before anything is sent for a command
	// that is empty or holds a newline or an unescaped ';'.
	ErrInvalidCommand = errors.New("haproxy: invalid command")
	// ErrProtocol: the socket's answer could not be split into one
	// response per command (not a stats socket, or it closed early).
	ErrProtocol = errors.New("haproxy: unexpected answer from the stats socket")
	// ErrReloadRequired is returned by Client.Apply for a Plan that needs
	// a reload.
	ErrReloadRequired = errors.New("haproxy: plan requires a reload")
	// ErrMismatch: Verify found the running servers differ from the
	// config. The error is a *VerifyError.
	ErrMismatch = errors.New("haproxy: runtime state differs from the config")
)

// CommandError is HAProxy refusing a runtime API command.
type CommandError struct {
	Cmd    string // the command as sent
	Output string // HAProxy's answer, without the severity prefix
	Err    error  // one of the ErrX sentinels above; ErrRefused when unknown
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("haproxy: %s: %s", e.Cmd, firstLine(e.Output))
}

// Unwrap returns the sentinel that names the refusal.
func (e *CommandError) Unwrap() error { return e.Err }

// refusals maps the start of HAProxy 2.6's answer texts to sentinels.
// They were collected from haproxy 2.6.12 (client_test.go provokes each
// one). Each is a failure whatever its severity: the comment gives the
// severity HAProxy reports with `set severity-output number`, and two of
// them are not reported as errors. Any other answer at severity 3 (error)
// or worse is ErrRefused.
var refusals = []struct {
	prefix string
	err    error
}{
	{"No such backend.", ErrNoSuchBackend},                                    // [3]
	{"Can't find backend.", ErrNoSuchBackend},                                 // [3] show servers state
	{"No such server.", ErrNoSuchServer},                                      // [3]
	{"Permission denied", ErrPermissionDenied},                                // [3]
	{"Unknown command", ErrUnknownCommand},                                    // [6]!
	{"Already exists a server with the same name", ErrServerExists},           // [3]
	{"Only servers in maintenance mode can be deleted.", ErrNotInMaintenance}, // [3]
	{"Server still has connections attached to it", ErrServerBusy},            // [3]
	{"This server cannot be removed at runtime", ErrServerReferenced},         // [3]
	{"Backend must use a dynamic load balancing", ErrStaticBackend},           // [3] add server
	{"Backend is using a static LB algorithm", ErrStaticBackend},              // [3] set weight
	{"Invalid addr", ErrInvalidArgument},                                      // [4]!
	{"invalid port", ErrInvalidArgument},                                      // [3]
	{"unknown keyword", ErrInvalidArgument},                                   // [3]
	{"Require ", ErrInvalidArgument},                                          // [3]
	{"Absolute weight can only be", ErrInvalidArgument},                       // [3]
	{"Relative weight must be positive", ErrInvalidArgument},                  // [3]
	{"Empty weight string", ErrInvalidArgument},                               // [3]
	{"Trailing garbage in weight string", ErrInvalidArgument},                 // [3]
	{"'set server <srv> state' expects", ErrInvalidArgument},                  // [3]
}

// classify turns one command's answer into nil or a *CommandError. out is
// the raw answer; it returns the text without the "[N]: " severity prefix.
func classify(cmd, out string) (string, error) {
	sev, text := splitSeverity(out)
	var sentinel error
	for _, r := range refusals {
		if strings.HasPrefix(text, r.prefix) {
			sentinel = r.err
			break
		}
	}
	switch {
	case sentinel == nil && strings.Contains(text, "option is not accepted for dynamic server"):
		sentinel = ErrNotDynamicOption
	case sentinel == nil && sev == 4 && strings.Contains(text, "can't change"):
		// "no need to change the addr, can't change <port> to port map
		// because ...": half applied, reported as a warning.
		sentinel = ErrInvalidArgument
	case sentinel == nil && sev >= 0 && sev <= 3:
		sentinel = ErrRefused
	}
	if sentinel == nil {
		return text, nil
	}
	return text, &CommandError{Cmd: cmd, Output: text, Err: sentinel}
}

// splitSeverity removes the "[N]: " prefix that `set severity-output
// number` puts before a message. sev is -1 when there is none (plain
// output such as `show servers state`).
func splitSeverity(out string) (sev int, text string) {
	if len(out) >= 5 && out[0] == '[' && out[2] == ']' && out[3] == ':' && out[4] == ' ' {
		if n, err := strconv.Atoi(out[1:2]); err == nil {
			return n, out[5:]
		}
	}
	return -1, out
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
