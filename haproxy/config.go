package haproxy

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// Config is a parsed HAProxy configuration: good enough to compare two
// rendered configs, not a validator (that is `haproxy -c`).
type Config struct {
	Sections []*Section
}

// Section is one section of the config, from its header line to the next
// header. Lines before the first header form a section with Kind "".
type Section struct {
	Kind string   // "global", "defaults", "frontend", "backend", "listen", "peers", ...
	Name string   // the first word after Kind; "" for global and unnamed defaults
	Args []string // the rest of the header line, e.g. ["from", "base"]
	Line int      // line number of the header, from 1; 0 for the preamble

	// Lines holds every line of the section but the header, server lines
	// included, in order: comments stripped, blank lines dropped, words
	// separated by one space (quotes and escapes kept as written).
	Lines []Line

	// Servers holds the `server` lines of backend and listen sections, in
	// order. Other sections have none (peers and ring sections have
	// `server` lines of their own kind: they stay plain Lines).
	Servers []Server

	// Defaults is the defaults section a proxy (frontend, backend,
	// listen) inherits from: the one named by "from NAME", else the last
	// one before it. nil when there is none, or for other sections.
	Defaults *Section
}

// Line is one normalised config line.
type Line struct {
	Num  int    // line number, from 1
	Text string // words joined by one space
}

// Keyword returns the first word of the line.
func (l Line) Keyword() string {
	k, _, _ := strings.Cut(l.Text, " ")
	return k
}

// Server is one `server NAME ADDRESS [options]` line with the values that
// the runtime API can change pulled out. Weight and Disabled are
// effective values: what HAProxy ends up with once default-server lines
// (of the defaults section, then of the backend, up to this line) apply.
type Server struct {
	Name string
	// Addr is the host part of the address: an IP (IPv6 without
	// brackets) or anything else as written (a host name, "unix@...",
	// "${VAR}"). When the port is not a plain number (port ranges,
	// "+1" mapping), Addr is the whole address and Port is 0.
	Addr     string
	Port     int  // 0 when the address has no port
	Weight   int  // "weight N"; HAProxy's default is 1
	Disabled bool // "disabled" (and no later "enabled"): starts in maintenance
	// Drain is set by the mark DrainMark in the line's comment: HAProxy's
	// config has no keyword for the drain state (no new connections but
	// persistent ones; open sessions finish), so rewire reads it from
	// there and sets it through the runtime API, and through the
	// server-state-file across reloads. Disabled wins over Drain.
	Drain bool
	// Options are the line's other options, one keyword with its
	// arguments per element ("check", "inter 2s"), in order, without
	// weight, disabled and enabled.
	Options []string
	// Defaults are the default-server options in effect for this line,
	// in the same form.
	Defaults []string
	Line     int
}

// state is the administrative state the server line asks for.
func (s Server) state() State {
	switch {
	case s.Disabled:
		return StateMaint
	case s.Drain:
		return StateDrain
	}
	return StateReady
}

// DrainMark in a server line's comment asks for the drain state:
//
//	server web-1 10.0.0.1:8080 weight 10  # rewire:drain
//
// It is one word of the comment; commas, semicolons and parentheses
// around it do not matter ("# passing, rewire:drain").
const DrainMark = "rewire:drain"

// hasDrainMark reports whether a comment holds DrainMark.
func hasDrainMark(comment string) bool {
	if !strings.Contains(comment, DrainMark) {
		return false
	}
	for _, w := range strings.FieldsFunc(comment, func(r rune) bool { return isSpace(r) || strings.ContainsRune(",;()", r) }) {
		if w == DrainMark {
			return true
		}
	}
	return false
}

// IsIP reports whether Addr is an IP address literal, the only kind of
// address the runtime API can set or add in HAProxy 2.6.
func (s Server) IsIP() bool {
	_, err := parseIP(s.Addr)
	return err == nil
}

// ParseError is a line Parse could not make sense of.
type ParseError struct {
	Line int
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("haproxy: line %d: %v", e.Line, e.Err) }

// Unwrap returns the underlying error.
func (e *ParseError) Unwrap() error { return e.Err }

// sectionKeywords are the words that start a section in HAProxy 2.6.
// Indentation means nothing to HAProxy: a line whose first word is one of
// these starts a new section wherever it is.
var sectionKeywords = map[string]bool{
	"global": true, "defaults": true, "frontend": true, "backend": true, "listen": true,
	"resolvers": true, "peers": true, "userlist": true, "program": true, "cache": true,
	"mailers": true, "http-errors": true, "ring": true, "fcgi-app": true, "log-forward": true,
}

// hasServers reports whether `server` lines of this kind of section are
// proxy servers.
func hasServers(kind string) bool { return kind == "backend" || kind == "listen" }

func isProxy(kind string) bool { return kind == "frontend" || kind == "backend" || kind == "listen" }

// Parse parses an HAProxy configuration. It is tolerant: it knows the
// section structure and the `server` and `default-server` lines, and keeps
// everything else as normalised text. It returns a *ParseError only for a
// `server` line without a name and an address.
func Parse(text []byte) (*Config, error) { return parse(text, nil) }

func parse(text []byte, memo *parseMemo) (*Config, error) {
	memo.begin()
	defer memo.end()
	c := &Config{}
	cur := &Section{}
	c.Sections = append(c.Sections, cur)
	var lastDefaults *Section
	var defaults []string // default-server options in effect in cur
	defKey := ""          // defaults joined, for the memo; "" until needed
	for num := 1; len(text) > 0; num++ {
		var raw []byte
		raw, text, _ = bytes.Cut(text, []byte("\n"))
		l := memo.line(raw)
		words := l.words
		if len(words) == 0 {
			continue
		}
		if sectionKeywords[words[0]] {
			cur = &Section{Kind: words[0], Line: num}
			if len(words) > 1 {
				cur.Name = words[1]
			}
			if len(words) > 2 {
				cur.Args = words[2:]
			}
			if isProxy(cur.Kind) {
				cur.Defaults = lastDefaults
				if i := indexOf(cur.Args, "from"); i >= 0 && i+1 < len(cur.Args) {
					cur.Defaults = c.findDefaults(cur.Args[i+1])
				}
			}
			if cur.Kind == "defaults" {
				lastDefaults = cur
				if i := indexOf(cur.Args, "from"); i >= 0 && i+1 < len(cur.Args) {
					cur.Defaults = c.findDefaults(cur.Args[i+1])
				}
			}
			c.Sections = append(c.Sections, cur)
			defaults, defKey = nil, ""
			if cur.Defaults != nil {
				defaults = cur.Defaults.defaultServer()
			}
			continue
		}
		cur.Lines = append(cur.Lines, Line{Num: num, Text: l.text})
		switch {
		case words[0] == "default-server":
			defaults, defKey = append(defaults, splitOptions(words[1:])...), ""
		case words[0] == "server" && hasServers(cur.Kind):
			if len(words) < 3 {
				return nil, &ParseError{Line: num, Err: errors.New("server line needs a name and an address")}
			}
			cur.Servers = append(cur.Servers, memo.server(num, raw, defaults, &defKey, l))
		}
	}
	if len(c.Sections[0].Lines) == 0 {
		c.Sections = c.Sections[1:] // no preamble
	}
	return c, nil
}

// findDefaults returns the last defaults section named name so far.
func (c *Config) findDefaults(name string) *Section {
	for i := len(c.Sections) - 1; i >= 0; i-- {
		if s := c.Sections[i]; s.Kind == "defaults" && s.Name == name {
			return s
		}
	}
	return nil
}

// defaultServer returns the default-server options a defaults section
// passes on: those it inherits, then its own.
func (s *Section) defaultServer() []string { return s.defaultsAt(math.MaxInt) }

// defaultsAt returns the default-server options in effect on line num of
// the section, as Parse collects them: those its defaults section passes
// on, then its own lines before num.
func (s *Section) defaultsAt(num int) []string {
	var opts []string
	if s.Defaults != nil && s.Defaults != s {
		opts = s.Defaults.defaultServer()
	}
	for _, l := range s.Lines {
		if l.Num >= num {
			break
		}
		if l.Keyword() == "default-server" {
			opts = append(opts, splitOptions(splitWords(l.Text)[1:])...)
		}
	}
	return opts
}

func newServer(num int, name, addr string, defaults, words []string) Server {
	s := Server{Name: name, Line: num, Weight: 1}
	s.Addr, s.Port = splitAddr(addr)
	// Pull weight, disabled and enabled out of the default-server
	// options, then the line's own: the last one wins in HAProxy.
	pull := func(opts []string) []string {
		var rest []string
		for _, o := range opts {
			k, v, _ := strings.Cut(o, " ")
			switch k {
			case "weight":
				if w, err := strconv.Atoi(v); err == nil && w >= 0 && w <= 256 {
					s.Weight = w
					continue
				}
			case "disabled":
				s.Disabled = true
				continue
			case "enabled":
				s.Disabled = false
				continue
			}
			rest = append(rest, o)
		}
		return rest
	}
	s.Defaults = pull(defaults)
	s.Options = pull(splitOptions(words))
	return s
}

// splitAddr splits a server address into host and port the way HAProxy
// does: brackets around IPv6, otherwise the last colon.
func splitAddr(a string) (string, int) {
	host, port := a, ""
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return a, 0
		}
		host, port = a[1:end], a[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return a, 0
		}
		port = strings.TrimPrefix(port, ":")
	} else if i := strings.LastIndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i+1:]
	}
	if port == "" {
		return host, 0
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || port[0] == '+' || port[0] == '-' {
		return a, 0 // a range, a mapping, a variable: keep it whole
	}
	return host, p
}

// parseIP parses an IP address as HAProxy's runtime API accepts it: no
// IPv6 zone.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("address %q has a zone", s)
	}
	return ip, nil
}

// splitWords splits a config line into words the way HAProxy does:
// whitespace separates words except inside quotes or after a backslash,
// and '#' outside quotes starts a comment. Quotes and backslashes are kept
// in the words, so that joining them with spaces gives back an equivalent
// line.
func splitWords(line string) []string {
	words, _ := splitLine(line)
	return words
}

// splitLine is splitWords that also returns the comment: the text after
// the '#' that starts it, or "" when the line has none.
func splitLine(line string) (words []string, comment string) {
	if !strings.ContainsAny(line, "\"'\\#") {
		return strings.FieldsFunc(line, isSpace), ""
	}
	var w strings.Builder
	inWord := false
	var quote byte
	flush := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '\\' && quote != '\'':
			w.WriteByte(ch)
			if i+1 < len(line) {
				i++
				w.WriteByte(line[i])
			}
			inWord = true
		case quote != 0:
			w.WriteByte(ch)
			if ch == quote {
				quote = 0
			}
		case ch == '"' || ch == '\'':
			quote = ch
			w.WriteByte(ch)
			inWord = true
		case ch == '#':
			flush()
			return words, line[i+1:]
		case isSpace(rune(ch)):
			flush()
		default:
			w.WriteByte(ch)
			inWord = true
		}
	}
	flush()
	return words, ""
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\v' || r == '\f' }

func indexOf(words []string, w string) int {
	for i, x := range words {
		if x == w {
			return i
		}
	}
	return -1
}

// String returns the config in normalised form: one header per section,
// its lines indented by four spaces, comments dropped but the DrainMark.
// Parse(c.String()) gives back an equivalent Config (line numbers aside).
func (c *Config) String() string {
	var b strings.Builder
	for i, s := range c.Sections {
		if i > 0 {
			b.WriteByte('\n')
		}
		if s.Kind != "" {
			b.WriteString(s.header())
			b.WriteByte('\n')
		}
		drain := map[int]bool{}
		for _, srv := range s.Servers {
			drain[srv.Line] = srv.Drain
		}
		for _, l := range s.Lines {
			b.WriteString("    ")
			b.WriteString(l.Text)
			if drain[l.Num] && l.Keyword() == "server" {
				b.WriteString("  # " + DrainMark)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// header returns the section's header line, normalised.
func (s *Section) header() string {
	if s.Name == "" {
		return s.Kind
	}
	return strings.Join(append([]string{s.Kind, s.Name}, s.Args...), " ")
}

// label names a section in messages: "backend web", "global".
func (s *Section) label() string {
	if s.Kind == "" {
		return "preamble"
	}
	if s.Name == "" {
		return s.Kind
	}
	return s.Kind + " " + s.Name
}

// Section returns the first section of that kind and name, or nil.
func (c *Config) Section(kind, name string) *Section {
	for _, s := range c.Sections {
		if s.Kind == kind && s.Name == name {
			return s
		}
	}
	return nil
}

// Server returns the server of that name, or false.
func (s *Section) Server(name string) (Server, bool) {
	for _, srv := range s.Servers {
		if srv.Name == name {
			return srv, true
		}
	}
	return Server{}, false
}

// Setting returns the arguments of the last line starting with keyword in
// the section, or else in the defaults section it inherits from, and
// whether one was found: Setting("balance") is ["roundrobin"].
func (s *Section) Setting(keyword string) ([]string, bool) {
	for i := len(s.Lines) - 1; i >= 0; i-- {
		if s.Lines[i].Keyword() == keyword {
			return splitWords(s.Lines[i].Text)[1:], true
		}
	}
	if s.Defaults != nil && s.Defaults != s {
		return s.Defaults.Setting(keyword)
	}
	return nil, false
}

// StatsSocket returns the path of the first unix-socket `stats socket` in
// the global section with "level admin", the one a Client needs.
func (c *Config) StatsSocket() (string, bool) {
	for _, s := range c.Sections {
		if s.Kind != "global" {
			continue
		}
		for _, l := range s.Lines {
			w := splitWords(l.Text)
			if len(w) < 3 || w[0] != "stats" || w[1] != "socket" {
				continue
			}
			i := indexOf(w, "level")
			if i < 0 || i+1 >= len(w) || w[i+1] != "admin" {
				continue
			}
			path := strings.TrimPrefix(w[2], "unix@")
			if strings.HasPrefix(path, "/") {
				return path, true
			}
		}
	}
	return "", false
}
