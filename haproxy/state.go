package haproxy

import (
	"context"
	"encoding/csv"
	"fmt"
	"strconv"
	"strings"
)

// Operational states (srv_op_state in `show servers state`).
const (
	OpStopped  = 0 // down
	OpStarting = 1 // up, warming up (slowstart)
	OpRunning  = 2 // up
	OpStopping = 3 // up but soft-stopping
)

// Administrative state bits (srv_admin_state in `show servers state`),
// from HAProxy 2.6's management manual. Measured on 2.6.12: "disabled" in
// the config gives FMaint|CMaint (0x05); `set server ... state ready`
// clears FMaint only, and the server then takes traffic with CMaint (0x04)
// still set: CMaint only records where the maintenance came from.
const (
	AdminFMaint = 0x01 // forced into maintenance: runtime API, or "disabled" in the config
	AdminIMaint = 0x02 // maintenance inherited from a tracked server
	AdminCMaint = 0x04 // "disabled" in the config (stays after the server is set ready)
	AdminFDrain = 0x08 // forced into drain
	AdminIDrain = 0x10 // drain inherited from a tracked server
	AdminRMaint = 0x20 // maintenance because the address did not resolve
	AdminHMaint = 0x40 // FQDN set from the runtime API
)

// ServerState is one line of `show servers state`.
type ServerState struct {
	BackendID     int
	Backend       string
	ID            int
	Name          string
	Addr          string         // IP address; IPv6 without brackets
	Port          int            // 0 when the server has none
	FQDN          string         // "" when the server has none
	OpState       int            // OpStopped...OpStopping
	AdminState    int            // Admin* bits
	Weight        int            // srv_uweight: current weight, as set by the config or the runtime API
	InitialWeight int            // srv_iweight: weight from the config
	row           []string       // every column of the line
	cols          map[string]int // column index by header name, shared by a table's rows
}

// Field returns the column named col (srv_check_status, srv_use_ssl, ...),
// and "" when the answer has no such column.
func (s ServerState) Field(col string) string {
	if i, ok := s.cols[col]; ok {
		return s.row[i]
	}
	return ""
}

// Maint reports whether the server is in maintenance, for any reason:
// forced, inherited from a tracked server, or failed resolution (HAProxy's
// SRV_ADMF_MAINT mask, 0x23). It then takes no traffic.
func (s ServerState) Maint() bool {
	return s.AdminState&(AdminFMaint|AdminIMaint|AdminRMaint) != 0
}

// AdminMaint reports whether the server was put in maintenance on
// purpose: "disabled" in the config, or the runtime API (set server ...
// state maint, disable server, and new dynamic servers until enabled).
// This is what a config's Disabled corresponds to.
func (s ServerState) AdminMaint() bool {
	return s.AdminState&AdminFMaint != 0
}

// Drain reports whether the server is draining (forced or inherited).
func (s ServerState) Drain() bool {
	return s.AdminState&(AdminFDrain|AdminIDrain) != 0
}

// stateTable is `show servers state` format 1 as a table: the column
// names of its header line and the rows, each with one field per column.
type stateTable struct {
	header []string
	rows   [][]string
}

// parseStateTable parses `show servers state` format 1: a version line,
// a header line "# be_id be_name ...", then one server per line.
func parseStateTable(out string) (stateTable, error) {
	var tab stateTable
	version := ""
	var fields []string // every row's fields, in one array
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			continue
		case version == "":
			version = line
			if version != "1" {
				return tab, fmt.Errorf("%w: show servers state: format %q, want 1", ErrProtocol, truncate(version, 40))
			}
			continue
		case strings.HasPrefix(line, "#"):
			if tab.header == nil {
				tab.header = strings.Fields(strings.TrimPrefix(line, "#"))
				n := strings.Count(out, "\n")
				fields = make([]string, 0, n*len(tab.header))
				tab.rows = make([][]string, 0, n)
			}
			continue
		case tab.header == nil:
			return tab, fmt.Errorf("%w: show servers state: no header before %q", ErrProtocol, truncate(line, 80))
		}
		start := len(fields)
		fields = appendFields(fields, line)
		if n := len(fields) - start; n != len(tab.header) {
			return tab, fmt.Errorf("%w: show servers state: %d fields for %d columns in %q", ErrProtocol, n, len(tab.header), truncate(line, 80))
		}
		tab.rows = append(tab.rows, fields[start:len(fields):len(fields)])
	}
	if version == "" {
		return tab, fmt.Errorf("%w: show servers state: empty answer", ErrProtocol)
	}
	return tab, nil
}

// appendFields appends the fields of line as strings.Fields splits it,
// without a slice of its own for each line: HAProxy's lines are ASCII,
// and a line that is not goes through strings.Fields.
func appendFields(dst []string, line string) []string {
	n, start := len(dst), -1
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c >= 0x80:
			return append(dst[:n], strings.Fields(line)...)
		case c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r':
			if start >= 0 {
				dst, start = append(dst, line[start:i]), -1
			}
		case start < 0:
			start = i
		}
	}
	if start >= 0 {
		dst = append(dst, line[start:])
	}
	return dst
}

// columns indexes a stateTable's header by name.
func columns(header []string) map[string]int {
	cols := make(map[string]int, len(header))
	for i, h := range header {
		cols[h] = i
	}
	return cols
}

// stateColumns are the columns a ServerState is made of, in the order
// they are read: the first missing or malformed one is reported.
var stateColumns = [...]string{"be_id", "be_name", "srv_id", "srv_name", "srv_addr", "srv_port", "srv_fqdn",
	"srv_op_state", "srv_admin_state", "srv_uweight", "srv_iweight"}

// stateIndex finds stateColumns in cols, once for a whole answer; -1 for
// a column the answer lacks.
func stateIndex(cols map[string]int) (idx [len(stateColumns)]int) {
	for k, col := range stateColumns {
		i, ok := cols[col]
		if !ok {
			i = -1
		}
		idx[k] = i
	}
	return idx
}

// newServerState makes a ServerState of one row of a stateTable, whose
// header cols indexes and idx locates stateColumns in.
func newServerState(cols map[string]int, idx *[len(stateColumns)]int, f []string) (ServerState, error) {
	st := ServerState{row: f, cols: cols}
	var err error
	field := func(k int) (string, bool) {
		if idx[k] < 0 {
			if err == nil {
				err = fmt.Errorf("%w: show servers state: no column %s", ErrProtocol, stateColumns[k])
			}
			return "", false
		}
		return f[idx[k]], true
	}
	num := func(k int) int {
		v, ok := field(k)
		if !ok {
			return 0
		}
		n, e := strconv.Atoi(v)
		if e != nil && err == nil {
			err = fmt.Errorf("%w: show servers state: %s = %q", ErrProtocol, stateColumns[k], v)
		}
		return n
	}
	text := func(k int) string {
		if v, _ := field(k); v != "-" {
			return v
		}
		return ""
	}
	st.BackendID, st.Backend = num(0), text(1)
	st.ID, st.Name = num(2), text(3)
	st.Addr, st.Port, st.FQDN = text(4), num(5), text(6)
	st.OpState, st.AdminState = num(7), num(8)
	st.Weight, st.InitialWeight = num(9), num(10)
	return st, err
}

// parseStat parses `show stat`: a CSV whose header line starts with "# ".
func parseStat(out string) ([]map[string]string, error) {
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(strings.TrimSpace(out), "# ")))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%w: show stat: %w", ErrProtocol, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: show stat: empty answer", ErrProtocol)
	}
	header := recs[0]
	rows := make([]map[string]string, 0, len(recs)-1)
	for _, rec := range recs[1:] {
		row := make(map[string]string, len(header))
		for i, h := range header {
			if h != "" && i < len(rec) {
				row[h] = rec[i]
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// LiveState is one `show servers state` answer, kept whole: Verify and
// SaveState can both work from the same answer.
type LiveState struct {
	tab    stateTable
	States []ServerState
}

// LiveState asks HAProxy for the state of every server.
func (c *Client) LiveState(ctx context.Context) (*LiveState, error) {
	out, err := c.Command(ctx, "show servers state")
	if err != nil {
		return nil, err
	}
	return parseLiveState(out)
}

// parseLiveState parses `show servers state` format 1. Columns are found
// by their header names.
func parseLiveState(out string) (*LiveState, error) {
	tab, err := parseStateTable(out)
	if err != nil {
		return nil, err
	}
	ls := &LiveState{tab: tab, States: make([]ServerState, 0, len(tab.rows))}
	cols := columns(tab.header)
	idx := stateIndex(cols)
	for _, f := range tab.rows {
		st, err := newServerState(cols, &idx, f)
		if err != nil {
			return nil, err
		}
		ls.States = append(ls.States, st)
	}
	return ls, nil
}
