package httpapi

import (
	"fmt"
	"strings"

	"github.com/mozpool/mozpool/fsm"
)

// anon says when a caller without a token may call a route.
type anon uint8

const (
	// anonNever: a token is always needed.
	anonNever anon = iota
	// anonOpen: anonymous callers pass under the open policy.
	anonOpen
	// anonBoard: as anonOpen, and under the strict policy a call from the
	// device's own address (a board reporting its progress, which carries
	// no token) passes too.
	anonBoard
	// anonPublic: no credentials are asked: the static web UI (to sign
	// in), the health check (monitors) and the internal endpoints between
	// nodes, which check the cluster token themselves.
	anonPublic
)

func (a anon) String() string {
	return [...]string{"never", "open policy", "open policy; strict: the board itself", "always"}[a]
}

// permission is who may call one route: a token of at least Role, and
// anonymous callers as Anon says.
type permission struct {
	Method, Path string
	Role         string
	Anon         anon
}

// permissions is the one permission table. Every route the router serves
// has a line (its slash-less spelling shares it); a route without one is
// refused to all but admins, and TestPermissionsEveryRoute fails. Adding a
// route is one line here. docs/api.md renders this table (go generate).
var permissions = []permission{
	// Top level and the web UI.
	{get, "/api/version/", fsm.RoleReader, anonOpen},
	{get, "/api/auth/whoami/", fsm.RoleReader, anonOpen},
	{get, "/", fsm.RoleReader, anonPublic},
	{get, "/ui", fsm.RoleReader, anonPublic},
	{get, "/ui/*filepath", fsm.RoleReader, anonPublic},

	// Devices.
	{get, "/api/device/:id/", fsm.RoleReader, anonOpen},
	{get, "/api/device/:id/state/", fsm.RoleReader, anonOpen},
	{get, "/api/device/:id/status/", fsm.RoleReader, anonOpen},
	{get, "/api/device/:id/log/", fsm.RoleReader, anonOpen},
	{get, "/api/device/:id/details/", fsm.RoleReader, anonOpen},
	{post, "/api/device/:id/set-comments/", fsm.RoleOperator, anonNever},
	{post, "/api/device/:id/set-environment/", fsm.RoleOperator, anonNever},
	{get, "/api/environment/list/", fsm.RoleReader, anonOpen},

	// Lifeguard.
	{get, "/api/device/:id/event/:event/", fsm.RoleOperator, anonBoard},
	{post, "/api/device/:id/event/:event/", fsm.RoleOperator, anonBoard},
	{post, "/api/device/:id/state-change/:old/to/:new/", fsm.RoleOperator, anonNever},
	{get, "/api/lifeguard/states/", fsm.RoleReader, anonOpen},
	{post, "/api/device/:id/register/", fsm.RoleOperator, anonBoard},

	// BMM.
	{post, "/api/device/:id/power-cycle/", fsm.RoleOperator, anonNever},
	{get, "/api/device/:id/power-off/", fsm.RoleOperator, anonNever},
	{post, "/api/device/:id/clear-pxe/", fsm.RoleOperator, anonNever},
	{get, "/api/device/:id/ping/", fsm.RoleReader, anonOpen},
	{get, "/api/relay/:board/test/", fsm.RoleOperator, anonNever},
	{get, "/api/device/:id/bootconfig/", fsm.RoleReader, anonBoard},

	// Requests.
	{post, "/api/device/:id/request/", fsm.RoleUser, anonOpen},
	{get, "/api/request/:id/", fsm.RoleReader, anonOpen},
	{get, "/api/request/:id/details/", fsm.RoleReader, anonOpen},
	{get, "/api/request/:id/status/", fsm.RoleReader, anonOpen},
	{get, "/api/request/:id/log/", fsm.RoleReader, anonOpen},
	{post, "/api/request/:id/renew/", fsm.RoleUser, anonOpen},
	{post, "/api/request/:id/return/", fsm.RoleUser, anonOpen},
	{get, "/api/request/:id/event/:event/", fsm.RoleOperator, anonNever},
	{post, "/api/request/:id/event/:event/", fsm.RoleOperator, anonNever},
	{get, "/api/queue/", fsm.RoleReader, anonOpen},
	{post, "/api/queue/weight/", fsm.RoleOperator, anonNever},
	{get, "/api/events/", fsm.RoleReader, anonOpen},

	// Images, PXE configs, inventory.
	{get, "/api/image/list/", fsm.RoleReader, anonOpen},
	{post, "/api/image/", fsm.RoleOperator, anonNever},
	{get, "/api/bmm/pxe_config/:name/", fsm.RoleReader, anonOpen},
	{get, "/api/bmm/pxe_config/:name/details/", fsm.RoleReader, anonOpen},
	{post, "/api/bmm/pxe_config/", fsm.RoleOperator, anonNever},
	{post, "/api/bmm/pxe_config/:name/update/", fsm.RoleOperator, anonNever},
	{post, "/api/bmm/image_pxe_config/", fsm.RoleOperator, anonNever},
	{post, "/api/inventory/sync/", fsm.RoleAdmin, anonNever},

	// Racks.
	{get, "/api/rack/:rack/", fsm.RoleReader, anonOpen},
	{get, "/api/rack/:rack/details/", fsm.RoleReader, anonOpen},
	{post, "/api/rack/:rack/move/", fsm.RoleOperator, anonNever},

	// Cluster.
	{get, "/api/cluster/status/", fsm.RoleReader, anonOpen},
	{get, "/api/cluster/health/", fsm.RoleReader, anonPublic},
	{get, "/api/cluster/self/", fsm.RoleReader, anonOpen},
	{post, "/api/cluster/join/", fsm.RoleAdmin, anonNever},
	{post, "/api/cluster/remove/", fsm.RoleAdmin, anonNever},
	{post, "/api/cluster/transfer-leader/", fsm.RoleAdmin, anonNever},
	{get, "/api/cluster/backup/", fsm.RoleAdmin, anonNever},
	{post, "/api/cluster/restore/", fsm.RoleAdmin, anonNever},
	{get, "/api/cluster/policy/", fsm.RoleReader, anonOpen},
	{post, "/api/cluster/policy/", fsm.RoleAdmin, anonNever},
	{get, "/_cluster/*path", fsm.RoleAdmin, anonPublic},
	{post, "/_cluster/*path", fsm.RoleAdmin, anonPublic},

	// Tokens.
	{get, "/api/token/:name/", fsm.RoleAdmin, anonNever},
	{post, "/api/token/", fsm.RoleAdmin, anonNever},
	{post, "/api/token/:name/revoke/", fsm.RoleAdmin, anonNever},
}

// permissionIndex maps "METHOD path" to the table's line.
var permissionIndex = func() map[string]permission {
	m := make(map[string]permission, len(permissions))
	for _, p := range permissions {
		k := p.Method + " " + p.Path
		if _, dup := m[k]; dup {
			panic("httpapi: permission table lists " + k + " twice")
		}
		if !fsm.ValidRole(p.Role) {
			panic("httpapi: permission table: bad role for " + k)
		}
		m[k] = p
	}
	return m
}()

// lookupPermission finds the line of a registered route: its path as
// written, or with a trailing slash (the slash-less spelling of a JSON
// route). ok is false for a route the table misses.
func lookupPermission(method, path string) (permission, bool) {
	if p, ok := permissionIndex[method+" "+path]; ok {
		return p, true
	}
	if !strings.HasSuffix(path, "/") && !strings.Contains(path, "*") {
		if p, ok := permissionIndex[method+" "+path+"/"]; ok {
			return p, true
		}
	}
	return permission{Method: method, Path: path, Role: fsm.RoleAdmin, Anon: anonNever}, false
}

// PermissionTable renders the permission table as Markdown, as docs/api.md
// shows it.
func PermissionTable() string {
	var b strings.Builder
	b.WriteString("| Method | Route | Least role with a token | Without a token |\n")
	b.WriteString("|---|---|---|---|\n")
	for _, p := range permissions {
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", p.Method, p.Path, p.Role, p.Anon)
	}
	return b.String()
}
