package haproxy

import (
	"bytes"
	"slices"
	"sort"
)

// splice is the fast path for the change a registry makes most: the same
// lines as prevText, some server lines edited in place, each keeping its
// server's name (a health flip, a weight, an address). prev must be
// spliceable (see spliceable): Diff would otherwise refuse any change
// for reasons an edit in place cannot alter. It returns the
// next config, built from prev (the parse of prevText) with only the
// edited servers parsed, and the plan Diff would return; ok is false for
// any other change, which the caller then parses and diffs in full. With
// 10,000 servers in one backend a flip then costs a comparison of the two
// texts and a copy of one section, not two parses and a diff.
func splice(prevText []byte, prev *Config, next []byte) (cfg *Config, plan Plan, ok bool) {
	type edit struct {
		si, ki, li int // section, server, line indexes in prev
		srv        Server
		text       string
	}
	var edits []edit
	a, b := prevText, next
	num := 1
	for {
		// Skip the lines both texts share.
		p := commonPrefix(a, b)
		if p == len(a) && p == len(b) {
			break
		}
		start := bytes.LastIndexByte(a[:p], '\n') + 1
		num += bytes.Count(a[:start], []byte("\n"))
		var la, lb []byte
		la, a, _ = bytes.Cut(a[start:], []byte("\n"))
		lb, b, _ = bytes.Cut(b[start:], []byte("\n"))
		wa := splitWords(string(la))
		nl := newMemoLine(lb)
		wb := nl.words
		if len(wa) < 3 || len(wb) < 3 || wa[0] != "server" || wb[0] != "server" || wa[1] != wb[1] {
			return nil, Plan{}, false
		}
		si, ki, li, found := prev.serverAt(num)
		if !found {
			return nil, Plan{}, false
		}
		srv := nl.server(num, prev.Sections[si].defaultsAt(num))
		edits = append(edits, edit{si, ki, li, srv, nl.text})
		num++
	}
	if len(edits) == 0 {
		return prev, Plan{}, true
	}
	cfg = &Config{Sections: slices.Clone(prev.Sections)}
	for i, e := range edits {
		if i == 0 || edits[i-1].si != e.si {
			cp := *prev.Sections[e.si]
			cp.Servers, cp.Lines = slices.Clone(cp.Servers), slices.Clone(cp.Lines)
			cfg.Sections[e.si] = &cp
		}
		cfg.Sections[e.si].Servers[e.ki] = e.srv
		cfg.Sections[e.si].Lines[e.li].Text = e.text
	}
	var changes []Change
	var static bool
	var algo string
	for i, e := range edits {
		sec := cfg.Sections[e.si]
		if i == 0 || edits[i-1].si != e.si {
			static, algo = staticAlgorithm(sec)
		}
		sets, reason := diffServer(sec, &prev.Sections[e.si].Servers[e.ki], &sec.Servers[e.ki], static, algo)
		if reason != "" {
			return cfg, Plan{Reload: true, Reason: reason}, true
		}
		changes = append(changes, sets...)
	}
	return cfg, Plan{Changes: changes}, true
}

// commonPrefix returns how many leading bytes a and b share.
func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	const chunk = 512
	for i+chunk <= n && bytes.Equal(a[i:i+chunk], b[i:i+chunk]) {
		i += chunk
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// serverAt finds the server declared on line num: its section, its index
// among the section's servers and among its lines.
func (c *Config) serverAt(num int) (si, ki, li int, ok bool) {
	si = sort.Search(len(c.Sections), func(i int) bool { return c.Sections[i].Line > num }) - 1
	if si < 0 || !hasServers(c.Sections[si].Kind) {
		return 0, 0, 0, false
	}
	sec := c.Sections[si]
	ki, ok = slices.BinarySearchFunc(sec.Servers, num, func(s Server, n int) int { return s.Line - n })
	if !ok {
		return 0, 0, 0, false
	}
	li, ok = slices.BinarySearchFunc(sec.Lines, num, func(l Line, n int) int { return l.Num - n })
	return si, ki, li, ok
}

// spliceable reports whether every backend and listen section of c has a
// name the runtime API takes and no server name twice: what Diff checks
// of every section, changed or not, and what edits in place that keep
// names cannot change.
func (c *Config) spliceable() bool {
	for _, sec := range c.Sections {
		if !hasServers(sec.Kind) {
			continue
		}
		if !validName(sec.Name) {
			return false
		}
		seen := make(map[string]struct{}, len(sec.Servers))
		for _, s := range sec.Servers {
			if _, dup := seen[s.Name]; dup {
				return false
			}
			seen[s.Name] = struct{}{}
		}
	}
	return true
}
