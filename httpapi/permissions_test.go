package httpapi

import (
	"bytes"
	goflag "flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
)

var updateDocs = goflag.Bool("update-docs", false, "rewrite the permission table in docs/api.md")

//go:generate go test -run TestPermissionTableInDocs -update-docs

// roleTokens creates one token per role and returns role → secret.
func (e *testEnv) roleTokens() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, role := range fsm.Roles {
		secret := "secret-of-" + role
		e.mustApply(fsm.CmdTokenCreate, &fsm.TokenCreate{Name: "the-" + role, Role: role, Hash: fsm.HashToken(secret)})
		out[role] = secret
	}
	return out
}

// concretePath fills a route pattern's parameters with values that pass
// the permission check and make no lasting change.
func concretePath(pattern string) string {
	r := strings.NewReplacer(":id", "dev1", ":event", "nosuch", ":old", "nosuch", ":new", "nosuch",
		":board", "nosuch", ":name", "list", "*filepath", "index.html", "*path", "status")
	return r.Replace(pattern)
}

// allowedBy is what the permission table says, worked out apart from
// authorize: role "" is an anonymous caller.
func allowedBy(p permission, role, policy string) bool {
	open := policy == fsm.PolicyOpen && p.Anon != anonNever
	switch {
	case p.Anon == anonPublic:
		return true
	case role == "":
		return open // the test's caller is no board
	}
	return open || roleRank(role) >= roleRank(p.Role)
}

// TestPermissionsEveryRoute calls every registered route (both spellings)
// as every role and anonymously, under both policies, and checks the
// answer against the permission table: 401 for an anonymous caller the
// route refuses, 403 for a role below the route's, anything else when
// allowed. It fails for a route the table misses and for a table line no
// route uses.
func TestPermissionsEveryRoute(t *testing.T) {
	e := newRequestEnv(t)
	tokens := e.roleTokens()
	require.NotEmpty(t, e.srv.routesSeen)

	used := map[string]bool{}
	for _, route := range e.srv.routesSeen {
		method, path, _ := strings.Cut(route, " ")
		p, ok := lookupPermission(method, path)
		require.True(t, ok, "route %s %s has no line in the permission table (permissions.go)", method, path)
		used[p.Method+" "+p.Path] = true
	}
	for _, p := range permissions {
		require.True(t, used[p.Method+" "+p.Path], "permission line %s %s matches no route", p.Method, p.Path)
	}

	for _, policy := range []string{fsm.PolicyOpen, fsm.PolicyStrict} {
		e.mustApply(fsm.CmdSetPolicy, &fsm.SetPolicy{Policy: policy})
		for _, route := range e.srv.routesSeen {
			method, pattern, _ := strings.Cut(route, " ")
			p, _ := lookupPermission(method, pattern)
			path := concretePath(pattern)
			for _, role := range append([]string{""}, fsm.Roles...) {
				who := role
				var hdr []string
				if role == "" {
					who = "anonymous"
				} else {
					hdr = []string{"Authorization", "Bearer " + tokens[role]}
				}
				name := fmt.Sprintf("%s %s %s as %s", policy, method, path, who)
				var body any
				if method == http.MethodPost {
					body = "{}"
				}
				r := e.anon().do(method, path, body, hdr...)
				switch {
				case allowedBy(p, role, policy):
					require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, r.StatusCode, "%s: body %q", name, r.body)
				case role == "":
					r.requireError(t, http.StatusUnauthorized)
				default:
					r.requireError(t, http.StatusForbidden)
				}
			}
		}
	}
}

// TestUnknownAndRevokedTokensLookAlike: a wrong token and a revoked one
// get the same 401 (nothing tells whether a token exists), even on routes
// anonymous callers may use.
func TestUnknownAndRevokedTokensLookAlike(t *testing.T) {
	e := newTestEnv(t).anon()
	tokens := e.roleTokens()
	e.mustApply(fsm.CmdTokenRevoke, &fsm.TokenRevoke{Name: "the-" + fsm.RoleOperator})
	wrong := e.get("/api/device/list/", "Authorization", "Bearer nosuch")
	revoked := e.get("/api/device/list/", "Authorization", "Bearer "+tokens[fsm.RoleOperator])
	require.Equal(t, http.StatusUnauthorized, wrong.StatusCode)
	require.Equal(t, string(wrong.body), string(revoked.body))
	require.Equal(t, http.StatusOK, e.get("/api/device/list/").StatusCode, "anonymous, open policy")
	require.Equal(t, http.StatusOK, e.get("/api/device/list/", "Authorization", "Bearer "+tokens[fsm.RoleReader]).StatusCode)
}

// TestBoardEventsUnderStrict: under the strict policy a board (calling
// from its inventory address, without a token) may still send its events
// and read its boot config; another anonymous caller may not.
func TestBoardEventsUnderStrict(t *testing.T) {
	e := newTestEnv(t).anon()
	e.mustApply(fsm.CmdSetPolicy, &fsm.SetPolicy{Policy: fsm.PolicyStrict})
	e.get("/api/device/dev1/bootconfig/").requireError(t, http.StatusUnauthorized)
	inv := sampleInventory()
	inv.Devices[0].IPAddress = "127.0.0.1"
	e.mustApply(fsm.CmdInventorySync, &fsm.InventorySync{Inventory: inv, ShipIt: true})
	require.Equal(t, http.StatusOK, e.get("/api/device/dev1/bootconfig/").StatusCode)
	require.NotEqual(t, http.StatusUnauthorized, e.get("/api/device/dev1/event/nosuch/").StatusCode)
	e.get("/api/device/dev2/event/nosuch/").requireError(t, http.StatusUnauthorized)
}

// TestRequestOwnership: a request created with a token belongs to it:
// another user, or an anonymous caller, may not renew or return it;
// its owner and operators may. An anonymous request is anyone's.
func TestRequestOwnership(t *testing.T) {
	e := newRequestEnv(t).anon()
	tokens := e.roleTokens()
	e.mustApply(fsm.CmdTokenCreate, &fsm.TokenCreate{Name: "bob", Role: fsm.RoleUser, Hash: fsm.HashToken("bob-secret")})
	e.ready("dev1", "dev2")
	alice := []string{"Authorization", "Bearer " + tokens[fsm.RoleUser]}
	bob := []string{"Authorization", "Bearer bob-secret"}
	op := []string{"Authorization", "Bearer " + tokens[fsm.RoleOperator]}

	id := idOf(t, e.createRequest("dev1", map[string]any{"assignee": "a", "duration": 60, "image": "android"}, alice...)["id"])
	e.fsm.Read(func(s *fsm.State) { require.Equal(t, "the-user", s.Requests[id].Owner) })
	renew := fmt.Sprintf("/api/request/%d/renew/", id)
	ret := fmt.Sprintf("/api/request/%d/return/", id)
	e.post(renew, `{"duration": 60}`, bob...).requireError(t, http.StatusForbidden)
	e.post(ret, nil, bob...).requireError(t, http.StatusForbidden)
	e.post(renew, `{"duration": 60}`).requireError(t, http.StatusForbidden)
	e.post(ret, nil).requireError(t, http.StatusForbidden)
	require.Equal(t, http.StatusNoContent, e.post(renew, `{"duration": 60}`, alice...).StatusCode)
	require.Equal(t, http.StatusNoContent, e.post(renew, `{"duration": 60}`, op...).StatusCode)
	require.Equal(t, http.StatusNoContent, e.post(ret, nil, op...).StatusCode)

	anon := idOf(t, e.createRequest("dev2", map[string]any{"assignee": "a", "duration": 60, "image": "android"})["id"])
	require.Equal(t, http.StatusNoContent, e.post(fmt.Sprintf("/api/request/%d/renew/", anon), `{"duration": 60}`, bob...).StatusCode)
	require.Equal(t, http.StatusNoContent, e.post(fmt.Sprintf("/api/request/%d/return/", anon), nil).StatusCode)
}

// TestTokenRoutes: an admin creates a token (its secret shown once),
// lists and revokes it; the new token works until revoked; whoami names it.
func TestTokenRoutes(t *testing.T) {
	e := newTestEnv(t)
	r := e.post("/api/token/", api.TokenCreate{Name: "ci", Role: fsm.RoleOperator})
	require.Equal(t, http.StatusCreated, r.StatusCode, "body %q", r.body)
	secret, _ := r.obj(t)["token"].(string)
	require.NotEmpty(t, secret)
	e.post("/api/token/", api.TokenCreate{Name: "ci", Role: fsm.RoleOperator}).requireError(t, http.StatusConflict)
	e.post("/api/token/", api.TokenCreate{Name: "x", Role: "root"}).requireError(t, http.StatusBadRequest)
	e.post("/api/token/", api.TokenCreate{Name: ClusterTokenName, Role: fsm.RoleAdmin}).requireError(t, http.StatusBadRequest)

	list := e.get("/api/token/list/")
	require.Equal(t, http.StatusOK, list.StatusCode)
	require.NotContains(t, string(list.body), secret)
	require.NotContains(t, string(list.body), fsm.HashToken(secret))
	require.Contains(t, string(list.body), `"name":"ci","role":"operator"`)

	as := []string{"Authorization", "Bearer " + secret}
	me := e.get("/api/auth/whoami/", as...).obj(t)
	require.Equal(t, "ci", me["name"])
	require.Equal(t, "operator", me["role"])
	require.Equal(t, http.StatusOK, e.post("/api/device/dev1/set-comments/", `{"comments": "by ci"}`, as...).StatusCode)
	require.Equal(t, "ci", e.cluster.lastHeader().Actor, "the command names its actor")
	e.post("/api/token/", api.TokenCreate{Name: "y", Role: fsm.RoleReader}, as...).requireError(t, http.StatusForbidden)

	require.Equal(t, http.StatusOK, e.post("/api/token/ci/revoke/", nil).StatusCode)
	e.post("/api/token/ci/revoke/", nil).requireError(t, http.StatusNotFound)
	e.post("/api/device/dev1/set-comments/", `{"comments": "x"}`, as...).requireError(t, http.StatusUnauthorized)

	anon := e.anon().get("/api/auth/whoami/").obj(t)
	require.Equal(t, "anonymous@127.0.0.1", anon["name"])
	require.Equal(t, true, anon["anonymous"])

	// The policy: admins set it.
	e.post("/api/cluster/policy/", api.Policy{Policy: "closed"}).requireError(t, http.StatusBadRequest)
	require.Equal(t, http.StatusOK, e.post("/api/cluster/policy/", api.Policy{Policy: fsm.PolicyStrict}).StatusCode)
	require.Equal(t, fsm.PolicyStrict, e.get("/api/cluster/policy/").obj(t)["policy"])
	e.anon().get("/api/device/list/").requireError(t, http.StatusUnauthorized)
}

// TestPermissionTableInDocs: docs/api.md shows the permission table as
// PermissionTable renders it (go generate ./httpapi/ rewrites it).
func TestPermissionTableInDocs(t *testing.T) {
	const begin, end = "<!-- permission table: begin -->\n", "<!-- permission table: end -->"
	path := filepath.Join("..", "docs", "api.md")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	doc := string(b)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	require.True(t, i >= 0 && j > i, "docs/api.md has no permission table markers")
	want := doc[:i+len(begin)] + PermissionTable() + doc[j:]
	if *updateDocs {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		return
	}
	require.Equal(t, want, doc, "docs/api.md's permission table is stale: run go generate ./httpapi/")
}

// TestRequestLogNamesCaller: the node's log line of every request names
// its caller.
func TestRequestLogNamesCaller(t *testing.T) {
	var buf syncBuffer
	e := newTestEnv(t, func(c *Config) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug})
	})
	e.post("/api/device/dev1/set-comments/", `{"comments": "x"}`)
	e.anon().get("/api/device/list/")
	out := buf.String()
	require.Contains(t, out, "path=/api/device/dev1/set-comments/ query=\"\" status=200")
	require.Regexp(t, `set-comments/ .*caller=cluster-token`, out)
	require.Regexp(t, `/api/device/list/ .*caller=anonymous@127.0.0.1`, out)
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
