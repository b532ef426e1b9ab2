package api_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly keeps api free of dependencies: every program that
// speaks the HTTP API imports it, the Go client first.
func TestStandardLibraryOnly(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/mozpool/mozpool/api" {
			t.Errorf("api depends on %s; it must import only the standard library", p)
		}
	}
}
