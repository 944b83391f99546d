package main

import "testing"

func TestFileShows(t *testing.T) {
	// web-10 before web-1: a match on "server web-1" alone would find it.
	cfg := []byte("backend web\n    server web-10 127.0.0.1:20010 weight 100  # passing\n" +
		"    server web-1 127.0.0.1:20001 weight 100 disabled  # critical\n    server web-11 127.0.0.1:20011 weight 100 disabled  # critical")
	for _, tc := range []struct {
		id       string
		critical bool
		want     bool
	}{
		{"web-1", true, true}, // not confused with web-10
		{"web-1", false, false},
		{"web-10", false, true},
		{"web-10", true, false},
		{"web-11", true, true}, // the last line, without a line break
		{"web-2", false, false},
	} {
		if got := fileShows(cfg, tc.id, tc.critical); got != tc.want {
			t.Errorf("fileShows(%s, critical %t) = %t, want %t", tc.id, tc.critical, got, tc.want)
		}
	}
}
