package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// StateFile is a file HAProxy loads server state from when it starts
// (server-state-file in global with `load-server-state-from-file global`,
// or one file per backend with `load-server-state-from-file local`), and
// the backends that load it.
type StateFile struct {
	Path     string
	Backends []string
}

// StateFiles returns the server-state files cfg makes HAProxy load, in
// the order of the backends that use them; none when no backend or
// listen section loads state. A path HAProxy would take relative to its
// working directory is an error: rewire cannot know that directory.
func (c *Config) StateFiles() ([]StateFile, error) {
	var base, global string
	for _, s := range c.Sections {
		if s.Kind != "global" {
			continue
		}
		for _, l := range s.Lines {
			w := splitWords(l.Text)
			if len(w) < 2 {
				continue
			}
			switch w[0] {
			case "server-state-base":
				base = unquote(w[1])
			case "server-state-file":
				global = unquote(w[1])
			}
		}
	}
	resolve := func(name, what string) (string, error) {
		if !filepath.IsAbs(name) {
			if base == "" {
				return "", fmt.Errorf("haproxy: %s %q is relative and the global section sets no absolute server-state-base", what, name)
			}
			name = filepath.Join(base, name)
		}
		if !filepath.IsAbs(name) {
			return "", fmt.Errorf("haproxy: %s %q: server-state-base %q is not absolute", what, name, base)
		}
		return filepath.Clean(name), nil
	}
	var files []StateFile
	index := map[string]int{}
	for _, s := range c.Sections {
		if !hasServers(s.Kind) {
			continue
		}
		mode, _ := s.Setting("load-server-state-from-file")
		var path string
		var err error
		switch {
		case len(mode) == 0 || mode[0] == "none":
			continue
		case mode[0] == "global":
			if global == "" {
				continue // HAProxy loads nothing
			}
			path, err = resolve(global, "server-state-file")
		case mode[0] == "local":
			name := s.Name
			if own, ok := s.Setting("server-state-file-name"); ok && len(own) > 0 && own[0] != "use-backend-name" {
				name = unquote(own[0])
			}
			path, err = resolve(name, "server state file of "+s.label())
		default:
			return nil, fmt.Errorf("haproxy: %s: load-server-state-from-file %q: want global, local or none", s.label(), mode[0])
		}
		if err != nil {
			return nil, err
		}
		i, ok := index[path]
		if !ok {
			i = len(files)
			index[path] = i
			files = append(files, StateFile{Path: path})
		}
		files[i].Backends = append(files[i].Backends, s.Name)
	}
	return files, nil
}

// unquote removes the quotes around a config word.
func unquote(w string) string {
	if len(w) >= 2 && (w[0] == '"' || w[0] == '\'') && w[len(w)-1] == w[0] {
		return w[1 : len(w)-1]
	}
	return w
}

// SaveState writes the server-state files cfg declares (StateFiles), so
// that the HAProxy that starts on cfg (a reload, or a restart) keeps what
// only the running one knows: each server's health (operational state and
// check results).
//
// The files are the running state reconciled with cfg, because HAProxy
// 2.6 lets a state file override the config: a port changed in the config
// comes back with the old one (measured), and a weight or maintenance set
// at runtime survives a config that says otherwise. cfg is the truth:
// each server is written with cfg's address, port, weight, disabled and
// DrainMark; a server whose address or port in cfg differs from the
// running one, whose address in cfg is not an IP, that is in maintenance
// (its health is unknown), or that cfg does not have, gets no line, so it
// starts fresh. Files are replaced atomically.
//
// It returns the paths written. On error nothing is half-written, but
// files may be stale: call RemoveStateFiles.
func SaveState(ctx context.Context, c *Client, cfg *Config) ([]string, error) {
	files, err := cfg.StateFiles()
	if err != nil || len(files) == 0 {
		return nil, err
	}
	ls, err := c.LiveState(ctx)
	if err != nil {
		return nil, err
	}
	return ls.SaveState(cfg)
}

// serversByName returns the configured servers by backend and name (the
// first section and server of a name, as HAProxy takes them), pointing
// into cfg's sections.
func (c *Config) serversByName() map[string]map[string]*Server {
	servers := map[string]map[string]*Server{}
	for _, s := range c.Sections {
		if _, dup := servers[s.Name]; dup || !hasServers(s.Kind) {
			continue
		}
		byName := make(map[string]*Server, len(s.Servers))
		for i := range s.Servers {
			if _, dup := byName[s.Servers[i].Name]; !dup {
				byName[s.Servers[i].Name] = &s.Servers[i]
			}
		}
		servers[s.Name] = byName
	}
	return servers
}

// SaveState is SaveState from this answer.
func (ls *LiveState) SaveState(cfg *Config) ([]string, error) {
	files, err := cfg.StateFiles()
	if err != nil || len(files) == 0 {
		return nil, err
	}
	tab := ls.tab
	col := columns(tab.header)
	for _, h := range []string{"be_name", "srv_name", "srv_addr", "srv_port", "srv_uweight", "srv_iweight", "srv_admin_state"} {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("%w: show servers state: no column %s", ErrProtocol, h)
		}
	}
	lines, size := ls.stateLines(cfg, col)
	cUW, cIW, cAdmin := col["srv_uweight"], col["srv_iweight"], col["srv_admin_state"]
	var written []string
	for _, sf := range files {
		n := 256
		for _, be := range sf.Backends {
			n += size[be]
		}
		b := make([]byte, 0, n)
		b = append(b, "1\n# "+strings.Join(tab.header, " ")+"\n"...)
		for _, be := range sf.Backends {
			for _, l := range lines[be] {
				for k, field := range l.row {
					if k > 0 {
						b = append(b, ' ')
					}
					switch k {
					case cUW, cIW:
						b = strconv.AppendInt(b, int64(l.weight), 10)
					case cAdmin:
						b = strconv.AppendInt(b, int64(l.admin), 10)
					default:
						b = append(b, field...)
					}
				}
				b = append(b, '\n')
			}
		}
		if err := writeAtomic(sf.Path, b); err != nil {
			return written, err
		}
		written = append(written, sf.Path)
	}
	return written, nil
}

// stateLine is a line of a server-state file: a row of the answer with
// cfg's weight and admin state put in. Rows are written field by field,
// not copied.
type stateLine struct {
	row           []string
	weight, admin int
}

// stateLines returns, by backend, the lines of the servers whose running
// state a reload into cfg may keep (see SaveState), and their size.
func (ls *LiveState) stateLines(cfg *Config, col map[string]int) (lines map[string][]stateLine, size map[string]int) {
	servers := cfg.serversByName()
	lines, size = map[string][]stateLine{}, map[string]int{}
	cBe, cName, cAddr, cPort := col["be_name"], col["srv_name"], col["srv_addr"], col["srv_port"]
	for i, f := range ls.tab.rows {
		be, name := f[cBe], f[cName]
		srv, ok := servers[be][name]
		if !ok {
			continue
		}
		ip, err := parseIP(srv.Addr)
		if err != nil {
			continue
		}
		live, err := parseIP(f[cAddr])
		var buf [20]byte // the port as HAProxy prints it, compared as text as it always was
		if err != nil || live.Unmap() != ip.Unmap() || string(strconv.AppendInt(buf[:0], int64(srv.Port), 10)) != f[cPort] {
			continue
		}
		// A server in maintenance is stopped and its checks are paused:
		// its operational state says nothing about its health. Loaded
		// for a server the new config enables, it would keep the server
		// down (for good when it has no checks to bring it up).
		if st := ls.States[i]; st.Maint() || st.AdminMaint() {
			continue
		}
		admin := 0
		switch srv.state() {
		case StateMaint:
			admin = AdminFMaint | AdminCMaint
		case StateDrain:
			admin = AdminFDrain
		}
		lines[be] = append(lines[be], stateLine{f, srv.Weight, admin})
		size[be] += len(f) + 8 // separators, and room for the numbers put in
		for _, field := range f {
			size[be] += len(field)
		}
	}
	return lines, size
}

// RemoveStateFiles removes the server-state files cfg declares, so that
// an HAProxy starting on cfg does not load a stale one (it then warns that
// it cannot open the file, and starts every server fresh).
func RemoveStateFiles(cfg *Config) error {
	files, err := cfg.StateFiles()
	if err != nil {
		return err
	}
	var errs []error
	for _, sf := range files {
		if err := os.Remove(sf.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, renamed over it.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("haproxy: server state file: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("haproxy: server state file %s: %w", path, err)
	}
	return nil
}
