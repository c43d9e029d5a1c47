package main

import (
	"strings"
	"testing"
)

const (
	passRun = `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"ok\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p","Elapsed":0.1}
`
	skipRun = `{"Action":"run","Package":"p","Test":"TestNS"}
{"Action":"output","Package":"p","Test":"TestNS","Output":"    ns_test.go:9: needs root\n"}
{"Action":"skip","Package":"p","Test":"TestNS"}
{"Action":"pass","Package":"p","Elapsed":0.1}
`
	failRun = `{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:3: boom\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"fail","Package":"p","Elapsed":0.1}
`
	buildFail = "# p\n./x.go:1:1: syntax error\nFAIL\tp [build failed]\n" +
		`{"Action":"fail","Package":"p","Elapsed":0}` + "\n"
	buildFailJSON = `{"ImportPath":"p","Action":"build-output","Output":"./x.go:3:2: undefined: x\n"}
{"ImportPath":"p","Action":"build-fail"}
{"Action":"start","Package":"p"}
{"Action":"output","Package":"p","Output":"FAIL\tp [build failed]\n"}
{"Action":"fail","Package":"p","Elapsed":0,"FailedBuild":"p"}
`
)

func TestReport(t *testing.T) {
	for _, tt := range []struct {
		name          string
		in            string
		ci, allowSkip bool
		want          int
		wantOut       string
	}{
		{"pass", passRun, true, false, 0, "PASS"},
		{"skip outside CI", skipRun, false, false, 0, "needs root"},
		{"skip in CI fails", skipRun, true, false, 1, "CI=true and 1 test(s) skipped"},
		{"skip in CI allowed", skipRun, true, true, 0, "1 skipped"},
		{"fail", failRun, false, false, 1, "boom"},
		{"build failure", buildFail, false, false, 1, "syntax error"},
		{"build failure json", buildFailJSON, false, false, 1, "undefined: x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			if got := report(strings.NewReader(tt.in), &out, tt.ci, tt.allowSkip); got != tt.want {
				t.Errorf("exit %d, want %d\n%s", got, tt.want, out.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out.String())
			}
		})
	}
}
