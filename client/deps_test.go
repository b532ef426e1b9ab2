package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoClusterDependencies keeps the client light: a program that only
// talks to Mozpool over HTTP must not link Raft, gossip or the storage
// engine. The client's types come from package api, which imports only the
// standard library.
func TestNoClusterDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list printed no packages")
	}
	for _, p := range deps {
		if forbidden(p) {
			t.Errorf("client depends on %s", p)
		}
	}
}

// forbidden reports whether the client must not depend on package p.
func forbidden(p string) bool {
	for _, prefix := range []string{
		"github.com/hashicorp/",
		"github.com/boltdb/",
		"go.etcd.io/",
		"github.com/mozpool/mozpool/cluster",
		"github.com/mozpool/mozpool/fsm",
		"github.com/mozpool/mozpool/logstore",
	} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return strings.Contains(p, "raft") || strings.Contains(p, "memberlist") || strings.Contains(p, "bbolt")
}
