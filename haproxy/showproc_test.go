package haproxy

import (
	"reflect"
	"testing"
)

func TestParseShowProc(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ProcStatus
		wantErr bool
	}{
		{
			name: "started",
			in: "#<PID>          <type>          <reloads>       <uptime>        <version>      \n" +
				"13997           master          0 [failed: 0]   0d00h10m10s     2.6.12-1+deb12u4\n" +
				"# workers\n" +
				"14013           worker          0               0d00h10m10s     2.6.12-1+deb12u4\n" +
				"# programs\n\n",
			want: ProcStatus{Master: Proc{PID: 13997}, Workers: []Proc{{PID: 14013}}},
		},
		{
			name: "after a failed reload",
			in: "#<PID>          <type>          <reloads>       <uptime>        <version>      \n" +
				"13997           master          2 [failed: 1]   0d00h10m22s     2.6.12-1+deb12u4\n" +
				"# workers\n" +
				"25471           worker          1               0d00h00m03s     2.6.12-1+deb12u4\n" +
				"# old workers\n" +
				"14013           worker          2               0d00h10m22s     2.6.12-1+deb12u4\n" +
				"# programs\n\n",
			want: ProcStatus{
				Master:  Proc{PID: 13997, Reloads: 2, Failed: 1},
				Workers: []Proc{{PID: 25471, Reloads: 1}, {PID: 14013, Reloads: 2}},
			},
		},
		{name: "empty", in: "", wantErr: true},
		{name: "garbage", in: "x master y\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseShowProc(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Errorf("parseShowProc(%q) = %+v, want an error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseShowProc(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseShowProc(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}
