package haproxy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ChangeKind is what a Change does to a server.
type ChangeKind int

// Change kinds, in the order a Plan applies them.
const (
	KindAdd       ChangeKind = iota // add server, then enable it
	KindSetAddr                     // set server ... addr IP port N
	KindSetWeight                   // set server ... weight N
	KindSetState                    // set server ... state ready|drain|maint
	KindDel                         // set server ... state maint, then del server
)

func (k ChangeKind) String() string {
	switch k {
	case KindAdd:
		return "add"
	case KindSetAddr:
		return "set-addr"
	case KindSetWeight:
		return "set-weight"
	case KindSetState:
		return "set-state"
	case KindDel:
		return "del"
	}
	return "ChangeKind(" + strconv.Itoa(int(k)) + ")"
}

// Change is one runtime API change to one server.
type Change struct {
	Kind    ChangeKind
	Backend string
	Server  string
	Addr    string // KindAdd, KindSetAddr: an IP address
	Port    int    // KindAdd, KindSetAddr: 0 for none
	Weight  int    // KindAdd, KindSetWeight
	State   State  // KindAdd, KindSetState
	// Options (KindAdd) are the options to give `add server`: the
	// default-server options in effect merged with the line's own, since
	// dynamic servers inherit nothing.
	Options []string
}

// String describes the change in one line, for logs.
func (c Change) String() string {
	s := c.Kind.String() + " " + c.Backend + "/" + c.Server
	switch c.Kind {
	case KindAdd:
		s += " " + hostPort(c.Addr, c.Port) + " weight " + strconv.Itoa(c.Weight) + " " + c.State.String()
		if len(c.Options) > 0 {
			s += " " + strings.Join(c.Options, " ")
		}
	case KindSetAddr:
		s += " " + hostPort(c.Addr, c.Port)
	case KindSetWeight:
		s += " " + strconv.Itoa(c.Weight)
	case KindSetState:
		s += " " + c.State.String()
	}
	return s
}

// Commands returns the runtime API commands that make the change.
func (c Change) Commands() []string {
	be, srv := c.Backend, c.Server
	switch c.Kind {
	case KindAdd:
		add := "add server " + be + "/" + srv + " " + hostPort(c.Addr, c.Port) + " weight " + strconv.Itoa(c.Weight)
		if len(c.Options) > 0 {
			add += " " + strings.Join(c.Options, " ")
		}
		cmds := []string{add}
		// A dynamic server starts in maintenance with its checks off.
		if hasOption(c.Options, "check") {
			cmds = append(cmds, "enable health "+be+"/"+srv)
		}
		if hasOption(c.Options, "agent-check") {
			cmds = append(cmds, "enable agent "+be+"/"+srv)
		}
		if c.State == StateReady {
			cmds = append(cmds, "enable server "+be+"/"+srv)
		} else if c.State == StateDrain {
			cmds = append(cmds, setStateCmd(be, srv, StateDrain))
		}
		return cmds
	case KindSetAddr:
		return []string{setAddrCmd(be, srv, c.Addr, c.Port)}
	case KindSetWeight:
		return []string{setWeightCmd(be, srv, c.Weight)}
	case KindSetState:
		return []string{setStateCmd(be, srv, c.State)}
	case KindDel:
		return []string{setStateCmd(be, srv, StateMaint), delCmd(be, srv)}
	}
	return nil
}

func setStateCmd(be, srv string, st State) string {
	return "set server " + be + "/" + srv + " state " + st.String()
}

func setWeightCmd(be, srv string, w int) string {
	return "set server " + be + "/" + srv + " weight " + strconv.Itoa(w)
}

// setAddrCmd: `set server addr` takes IPv6 with or without brackets;
// without is what `show servers state` prints.
func setAddrCmd(be, srv, ip string, port int) string {
	return "set server " + be + "/" + srv + " addr " + ip + " port " + strconv.Itoa(port)
}

func delCmd(be, srv string) string { return "del server " + be + "/" + srv }

// hostPort formats an address for `add server`, which needs brackets
// around IPv6 when a port follows.
func hostPort(addr string, port int) string {
	if ip, err := netip.ParseAddr(addr); err == nil && ip.Is6() {
		addr = "[" + addr + "]"
	}
	if port == 0 {
		return addr
	}
	return addr + ":" + strconv.Itoa(port)
}

// Plan is the outcome of Diff: either a reload, or runtime API changes
// (none when the configs are equivalent).
type Plan struct {
	Reload  bool
	Reason  string // why a reload is needed: the first difference found
	Changes []Change
}

// Empty reports whether the plan has nothing to do.
func (p Plan) Empty() bool { return !p.Reload && len(p.Changes) == 0 }

// Commands returns the runtime API commands of every change, in order:
// additions first (capacity before removals), then address, weight and
// state changes (address before the server is enabled), deletions last.
// A reload plan has none.
func (p Plan) Commands() []string {
	if p.Reload {
		return nil
	}
	var cmds []string
	for _, c := range p.Changes {
		cmds = append(cmds, c.Commands()...)
	}
	return cmds
}

// Diff compares the config HAProxy runs (old) with the next one. When they
// differ only in what the HAProxy 2.6 runtime API can change on servers
// of backends (address, weight, disabled, the DrainMark, servers added or
// removed), the plan lists those changes; otherwise it asks for a reload
// and says why.
//
// A reload is needed when a section, a non-server line (including
// default-server), or a server's other options differ, and for what 2.6
// cannot do at runtime: add a server to a backend with a static algorithm
// (static-rr, or hashing with the default map-based hash-type) or with a
// cookie (the new server could not get one), add or move a server to a
// host name (no resolution at runtime), add a server with an option
// `add server` refuses, or change a weight in a static backend. Server
// order, comments, blank lines and spacing do not matter.
//
// A plan is what 2.6 should accept; HAProxy can still refuse a change
// when Client.Apply sends it (del server of a server that track or
// use-server points to, add server tracking a server without checks):
// then reload.
func Diff(old, next *Config) (Plan, error) {
	if old == nil || next == nil {
		return Plan{}, errors.New("haproxy: diff: nil config")
	}
	if reason := diffSections(old, next); reason != "" {
		return Plan{Reload: true, Reason: reason}, nil
	}
	var adds, sets, dels []Change
	for i, ns := range next.Sections {
		if !hasServers(ns.Kind) {
			continue
		}
		a, s, d, reason := diffServers(old.Sections[i], ns)
		if reason != "" {
			return Plan{Reload: true, Reason: reason}, nil
		}
		adds, sets, dels = append(adds, a...), append(sets, s...), append(dels, d...)
	}
	return Plan{Changes: slices.Concat(adds, sets, dels)}, nil
}

// diffSections returns why the configs differ outside server lines, or "".
func diffSections(old, next *Config) string {
	for i := range max(len(old.Sections), len(next.Sections)) {
		if i >= len(next.Sections) {
			return old.Sections[i].label() + " removed"
		}
		if i >= len(old.Sections) {
			return next.Sections[i].label() + " added"
		}
		os, ns := old.Sections[i], next.Sections[i]
		if os.header() != ns.header() {
			return fmt.Sprintf("%s replaced by %s (line %d)", os.label(), ns.label(), ns.Line)
		}
		ol, nl := otherLines(os), otherLines(ns)
		for j := range max(len(ol), len(nl)) {
			switch {
			case j >= len(nl):
				return fmt.Sprintf("%s: %q removed (old line %d)", os.label(), ol[j].Text, ol[j].Num)
			case j >= len(ol):
				return fmt.Sprintf("%s: %q added (line %d)", ns.label(), nl[j].Text, nl[j].Num)
			case ol[j].Text != nl[j].Text:
				return fmt.Sprintf("%s: %q changed to %q (line %d)", ns.label(), ol[j].Text, nl[j].Text, nl[j].Num)
			}
		}
	}
	return ""
}

// otherLines returns a section's lines but its servers.
func otherLines(s *Section) []Line {
	if !hasServers(s.Kind) {
		return s.Lines
	}
	var out []Line
	for _, l := range s.Lines {
		if l.Keyword() != "server" {
			out = append(out, l)
		}
	}
	return out
}

// diffServers compares the servers of one backend or listen section.
func diffServers(os, ns *Section) (adds, sets, dels []Change, reason string) {
	be := ns.Name
	if !validName(be) {
		return nil, nil, nil, fmt.Sprintf("%s: name %q cannot be used on the runtime API", ns.label(), be)
	}
	oldByName := make(map[string]int, len(os.Servers)) // index in os.Servers
	for i, s := range os.Servers {
		oldByName[s.Name] = i
	}
	newByName := make(map[string]struct{}, len(ns.Servers))
	for _, s := range ns.Servers {
		if _, dup := newByName[s.Name]; dup {
			return nil, nil, nil, fmt.Sprintf("%s: server %s declared twice (line %d)", ns.label(), s.Name, s.Line)
		}
		newByName[s.Name] = struct{}{}
	}
	static, algo := staticAlgorithm(ns)
	for i := range ns.Servers {
		n := &ns.Servers[i]
		oi, ok := oldByName[n.Name]
		if !ok {
			ch, why := addChange(ns, *n, static, algo)
			if why != "" {
				return nil, nil, nil, why
			}
			adds = append(adds, ch)
			continue
		}
		sets2, reason := diffServer(ns, &os.Servers[oi], n, static, algo)
		if reason != "" {
			return nil, nil, nil, reason
		}
		sets = append(sets, sets2...)
	}
	for _, o := range os.Servers {
		if _, ok := newByName[o.Name]; !ok {
			dels = append(dels, Change{Kind: KindDel, Backend: be, Server: o.Name})
		}
	}
	return adds, sets, dels, ""
}

// diffServer compares one server of section ns with its previous line o:
// the changes the runtime API makes, or why it cannot.
func diffServer(ns *Section, o, n *Server, static bool, algo string) (sets []Change, reason string) {
	be := ns.Name
	where := func() string { return fmt.Sprintf("%s: server %s (line %d)", ns.label(), n.Name, n.Line) }
	if !slices.Equal(o.Options, n.Options) {
		return nil, fmt.Sprintf("%s: options %q changed to %q", where(), strings.Join(o.Options, " "), strings.Join(n.Options, " "))
	}
	if !slices.Equal(o.Defaults, n.Defaults) {
		return nil, fmt.Sprintf("%s: default-server options %q changed to %q", where(), strings.Join(o.Defaults, " "), strings.Join(n.Defaults, " "))
	}
	if !sameAddr(o.Addr, n.Addr) || o.Port != n.Port {
		ip, err := parseIP(n.Addr)
		if err != nil {
			return nil, fmt.Sprintf("%s: address %s is not an IP address: 2.6 does not resolve names at runtime", where(), hostPort(n.Addr, n.Port))
		}
		sets = append(sets, Change{Kind: KindSetAddr, Backend: be, Server: n.Name, Addr: ip.String(), Port: n.Port})
	}
	if o.Weight != n.Weight {
		if static {
			return nil, fmt.Sprintf("%s: weight %d changed to %d, and backend %s uses %s: 2.6 cannot change its weights at runtime", where(), o.Weight, n.Weight, be, algo)
		}
		sets = append(sets, Change{Kind: KindSetWeight, Backend: be, Server: n.Name, Weight: n.Weight})
	}
	if st := n.state(); st != o.state() {
		sets = append(sets, Change{Kind: KindSetState, Backend: be, Server: n.Name, State: st})
	}
	return sets, ""
}

// addChange returns the change that adds n to backend ns, or why 2.6
// cannot add it at runtime.
func addChange(ns *Section, n Server, static bool, algo string) (Change, string) {
	be := ns.Name
	where := fmt.Sprintf("%s: server %s added (line %d)", ns.label(), n.Name, n.Line)
	if static {
		return Change{}, fmt.Sprintf("%s, and backend %s uses %s: 2.6 cannot add servers at runtime", where, be, algo)
	}
	if _, ok := ns.Setting("cookie"); ok {
		return Change{}, fmt.Sprintf("%s, and backend %s uses a cookie: a server added at runtime gets none", where, be)
	}
	if !validName(n.Name) {
		return Change{}, fmt.Sprintf("%s: name cannot be used on the runtime API", where)
	}
	ip, err := parseIP(n.Addr)
	if err != nil {
		return Change{}, fmt.Sprintf("%s: address %s is not an IP address: 2.6 does not resolve names at runtime", where, hostPort(n.Addr, n.Port))
	}
	opts := mergeOptions(n.Defaults, n.Options, true)
	for _, o := range opts {
		k := optionKeyword(o)
		if kw, ok := serverKeywords[k]; !ok || !kw.dynamic {
			return Change{}, fmt.Sprintf("%s: option %q cannot be given to add server in 2.6", where, o)
		}
		if strings.ContainsAny(o, "\"'\\;#") {
			return Change{}, fmt.Sprintf("%s: option %q needs quoting, which the runtime API does not take", where, o)
		}
	}
	return Change{Kind: KindAdd, Backend: be, Server: n.Name, Addr: ip.String(), Port: n.Port,
		Weight: n.Weight, State: n.state(), Options: opts}, ""
}

// staticAlgorithm reports whether the backend's load-balancing algorithm
// is static in HAProxy 2.6 (no runtime weight changes, no added servers),
// and names it. static-rr is; hashing algorithms are unless hash-type is
// consistent; roundrobin (the default), leastconn, first and random are
// dynamic. An algorithm this package does not know counts as static.
func staticAlgorithm(s *Section) (bool, string) {
	algo := "roundrobin"
	if args, ok := s.Setting("balance"); ok && len(args) > 0 {
		algo = args[0]
	}
	name, _, _ := strings.Cut(algo, "(")
	switch name {
	case "roundrobin", "leastconn", "first", "random":
		return false, algo
	case "static-rr":
		return true, algo
	case "source", "uri", "url_param", "hdr", "rdp-cookie", "hash":
		hashType := "map-based"
		if args, ok := s.Setting("hash-type"); ok && len(args) > 0 {
			hashType = args[0]
		}
		if hashType == "consistent" {
			return false, algo
		}
		return true, algo + " with hash-type " + hashType
	}
	return true, "balance " + algo
}

// sameAddr compares addresses, as IPs when both are.
func sameAddr(a, b string) bool {
	ia, ea := parseIP(a)
	ib, eb := parseIP(b)
	if ea == nil && eb == nil {
		return ia == ib
	}
	return a == b
}

// validName reports whether a proxy or server name can be sent on the
// runtime API as is: HAProxy allows letters, digits, '-', '_', '.' and
// ':' in names.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_.:", r)) {
			return false
		}
	}
	return true
}
