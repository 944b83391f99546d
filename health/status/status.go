// Package status holds the health vocabulary shared by the record format
// (registry/schema) and the prober (health): the statuses a check or an
// instance can have, and the kinds of check. It imports nothing of
// rewire's, so the data contract does not depend on the code that probes.
//
//	s, err := status.Parse("warning")
//	worst := status.Worst(status.Passing, s) // warning
package status

import "fmt"

// Status is the health of a check or an instance.
type Status string

// The statuses, from best to worst.
const (
	Passing  Status = "passing"
	Warning  Status = "warning"
	Critical Status = "critical"
)

// Parse returns the Status named by s. It accepts exactly the lowercase
// names of the constants.
func Parse(s string) (Status, error) {
	st := Status(s)
	if !st.Valid() {
		return "", fmt.Errorf("health: invalid status %q", s)
	}
	return st, nil
}

// Valid reports whether s is one of Passing, Warning or Critical.
func (s Status) Valid() bool {
	return s == Passing || s == Warning || s == Critical
}

// Rank orders statuses from best (0) to worst (2). Invalid statuses rank
// as Critical.
func (s Status) Rank() int {
	switch s {
	case Passing:
		return 0
	case Warning:
		return 1
	default:
		return 2
	}
}

// Worst returns the worst of ss: Critical beats Warning beats Passing.
// An invalid status counts as Critical. With no arguments it returns Passing.
func Worst(ss ...Status) Status {
	w := Passing
	for _, s := range ss {
		if s.Rank() > w.Rank() {
			w = s
		}
	}
	if !w.Valid() {
		return Critical
	}
	return w
}

// Kind says which aggregate a check counts towards.
type Kind string

// The kinds of check. Shallow checks say whether the instance itself is up;
// deep checks also cover its dependencies.
const (
	Shallow Kind = "shallow"
	Deep    Kind = "deep"
)

// ParseKind returns the Kind named by s. The empty string means Shallow.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case "":
		return Shallow, nil
	case Shallow, Deep:
		return k, nil
	}
	return "", fmt.Errorf("health: invalid kind %q", s)
}
