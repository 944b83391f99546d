package haproxy

import "strings"

// parseMemo carries the lines of one parse over to the next, so that a
// config that changed in a few server lines (one health flip among 10,000
// servers) costs a map lookup per unchanged line, not a split and a
// server parse. Only what the last parse used is kept.
type parseMemo struct {
	lines, nextLines     map[string]memoLine
	servers, nextServers map[memoKey]Server
}

// memoLine is a raw line as splitLine and Parse saw it.
type memoLine struct {
	words   []string
	comment string
	text    string // words joined by one space
}

// memoKey is a server line with the default-server options in effect.
type memoKey struct{ defaults, raw string }

// newMemoLine splits raw as Parse reads a line.
func newMemoLine(raw []byte) memoLine {
	words, comment := splitLine(string(raw))
	return memoLine{words: words, comment: comment, text: strings.Join(words, " ")}
}

// server parses l, a server line of at least three words, at line num
// with the default-server options in effect.
func (l memoLine) server(num int, defaults []string) Server {
	srv := newServer(num, l.words[1], l.words[2], defaults, l.words[3:])
	srv.Drain = hasDrainMark(l.comment)
	return srv
}

func (m *parseMemo) line(raw []byte) memoLine {
	if m == nil {
		return newMemoLine(raw)
	}
	if l, ok := m.nextLines[string(raw)]; ok {
		return l
	}
	l, ok := m.lines[string(raw)]
	if !ok {
		l = newMemoLine(raw)
	}
	m.nextLines[string(raw)] = l
	return l
}

func (m *parseMemo) server(num int, raw []byte, defaults []string, defKey *string, l memoLine) Server {
	if m == nil {
		return l.server(num, defaults)
	}
	if *defKey == "" && len(defaults) > 0 {
		*defKey = strings.Join(defaults, "\x00")
	}
	k := memoKey{*defKey, string(raw)}
	srv, ok := m.nextServers[k]
	if !ok {
		if srv, ok = m.servers[k]; !ok {
			srv = l.server(num, defaults)
		}
		m.nextServers[k] = srv
	}
	srv.Line = num
	return srv
}

// begin and end frame one parse.
func (m *parseMemo) begin() {
	if m != nil {
		m.nextLines = make(map[string]memoLine, len(m.lines))
		m.nextServers = make(map[memoKey]Server, len(m.servers))
	}
}

func (m *parseMemo) end() {
	if m != nil {
		m.lines, m.servers = m.nextLines, m.nextServers
		m.nextLines, m.nextServers = nil, nil
	}
}
