package haproxy

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// VerifyError lists how the running servers differ from a config.
type VerifyError struct {
	Mismatches []string // one per difference, "backend/server: ..."
}

func (e *VerifyError) Error() string {
	return "haproxy: runtime state differs from the config: " + strings.Join(e.Mismatches, "; ")
}

// Unwrap returns ErrMismatch.
func (e *VerifyError) Unwrap() error { return ErrMismatch }

// templateNames returns the names of the servers the section's
// `server-template PREFIX N|LOW-HIGH ...` lines create: PREFIX1..PREFIXN.
// Verify does not check those servers, but they are not strangers.
func templateNames(sec *Section) map[string]bool {
	names := map[string]bool{}
	for _, l := range sec.Lines {
		if l.Keyword() != "server-template" {
			continue // without splitting every server line of a large backend
		}
		w := splitWords(l.Text)
		if len(w) < 3 || w[0] != "server-template" {
			continue
		}
		lo, hi := 1, 0
		if a, b, ok := strings.Cut(w[2], "-"); ok {
			lo, _ = strconv.Atoi(a)
			hi, _ = strconv.Atoi(b)
		} else {
			hi, _ = strconv.Atoi(w[2])
		}
		for i := lo; i <= hi && i-lo < 100000; i++ {
			names[w[1]+strconv.Itoa(i)] = true
		}
	}
	return names
}

// Verify compares what HAProxy runs (`show servers state`) with the
// servers of cfg's backend and listen sections: every server is there and
// no other; the address (when the config gives an IP) and the port are
// equal; the weight is equal; the server is in maintenance on purpose
// (ServerState.AdminMaint) exactly when the config says disabled; it
// drains when the line has the DrainMark (and is not disabled). Drain
// set by hand on the runtime API on a server without the mark is not a
// mismatch, and servers made by
// server-template lines are not checked. It returns a
// *VerifyError (errors.Is ErrMismatch) listing every difference.
func Verify(ctx context.Context, c *Client, cfg *Config) error {
	ls, err := c.LiveState(ctx)
	if err != nil {
		return err
	}
	return ls.Verify(cfg)
}

// Verify is Verify on this answer.
func (ls *LiveState) Verify(cfg *Config) error {
	// running: by backend and name, the index of the server's state.
	// seen[i] is 1 + the index of the section whose server matched it.
	running := map[string]map[string]int{}
	for i, st := range ls.States {
		m := running[st.Backend]
		if m == nil {
			m = map[string]int{}
			running[st.Backend] = m
		}
		m[st.Name] = i
	}
	seen := make([]int, len(ls.States))
	var bad []string
	configured := map[string]bool{}
	for k, sec := range cfg.Sections {
		if !hasServers(sec.Kind) {
			continue
		}
		configured[sec.Name] = true
		live := running[sec.Name]
		for j := range sec.Servers {
			s := &sec.Servers[j]
			i, ok := live[s.Name]
			if !ok {
				bad = append(bad, sec.Name+"/"+s.Name+": not running")
				continue
			}
			seen[i] = k + 1
			bad = s.mismatches(bad, sec.Name, &ls.States[i])
		}
		var templated map[string]bool // only when a running server is not in the config
		for name, i := range live {
			if seen[i] == k+1 {
				continue
			}
			if templated == nil {
				templated = templateNames(sec)
			}
			if !templated[name] {
				bad = append(bad, sec.Name+"/"+name+": running but not in the config")
			}
		}
	}
	for be, servers := range running {
		if !configured[be] {
			for name := range servers {
				bad = append(bad, be+"/"+name+": running but its backend is not in the config")
			}
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return &VerifyError{Mismatches: bad}
	}
	return nil
}

// mismatches appends how st, the running state of s in backend be,
// differs from s.
func (s *Server) mismatches(bad []string, be string, st *ServerState) []string {
	id := func() string { return be + "/" + s.Name }
	if ip, err := parseIP(s.Addr); err == nil {
		if rip, err := parseIP(st.Addr); err != nil || rip.Unmap() != ip.Unmap() {
			bad = append(bad, fmt.Sprintf("%s: address %s, want %s", id(), st.Addr, ip))
		}
	}
	if (s.IsIP() || s.Port != 0) && st.Port != s.Port {
		bad = append(bad, fmt.Sprintf("%s: port %d, want %d", id(), st.Port, s.Port))
	}
	if st.Weight != s.Weight {
		bad = append(bad, fmt.Sprintf("%s: weight %d, want %d", id(), st.Weight, s.Weight))
	}
	if st.AdminMaint() != s.Disabled {
		bad = append(bad, fmt.Sprintf("%s: admin state %#x, want maintenance %t", id(), st.AdminState, s.Disabled))
	} else if s.Drain && !s.Disabled && !st.Drain() {
		bad = append(bad, fmt.Sprintf("%s: admin state %#x, want drain (%s)", id(), st.AdminState, DrainMark))
	}
	return bad
}
