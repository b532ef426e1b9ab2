package httpapi

import (
	"net/http"
	"slices"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/httpapi/ui"
)

const (
	get  = http.MethodGet
	post = http.MethodPost
)

// routes builds the router. Every route is one line below.
//
// httprouter v1.3.0 cannot hold a static segment and a :param at the same
// position, so "/api/device/list/" cannot sit beside "/api/device/:id/state/".
// List routes are therefore registered as "/api/device/:id/" with the
// listOnly("id") check, which turns any name but "list" into a 404; the PXE
// config list and the request list do the same.
//
// Reads of the local state have the read check, writes validated against
// it the validated check, other writes the ordered check (see
// consistency.go; knownDevice refuses an unknown device 503, not 404, until
// the node serves); the top-level, cluster and operator routes, the UI and
// the internal /_cluster/ endpoints have none, so an operator can always
// see why a node does not serve.
func (s *Server) routes() http.Handler {
	r := httprouter.New()
	// We register both spellings of every path ourselves: the original
	// answers slash-less JSON paths with 303 (query kept), not 301/307.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	// The original has no OPTIONS support: OPTIONS is a 405.
	r.HandleOPTIONS = false
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { s.writeError(w, req, errNotFound) })
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { s.writeError(w, req, errMethodNotAllowed) })
	r.PanicHandler = s.recoverPanic
	rt := routeTable{s: s, r: r, list: &s.routeList, registered: &s.routesSeen}

	// Top level. The web UI is static files; "/" and "/ui" send browsers to it.
	rt.json(get, "/api/version/", s.getVersion)
	rt.json(get, "/api/auth/whoami/", s.getWhoami)
	rt.mount(get, "/", http.RedirectHandler("ui/", http.StatusFound))
	rt.mount(get, "/ui", http.RedirectHandler("ui/", http.StatusFound))
	rt.mount(get, "/ui/*filepath", ui.Handler())

	// Devices.
	rt.json(get, "/api/device/:id/", s.getDeviceList, listOnly("id"), s.read)
	rt.json(get, "/api/device/:id/state/", s.getDeviceState, s.read)
	rt.json(get, "/api/device/:id/status/", s.getDeviceStatus, s.read)
	rt.json(get, "/api/device/:id/log/", s.getDeviceLog, s.read)
	rt.json(get, "/api/device/:id/details/", s.getDeviceDetails, s.read)
	rt.json(post, "/api/device/:id/set-comments/", s.postDeviceComments, s.ordered, s.knownDevice)
	rt.json(post, "/api/device/:id/set-environment/", s.postDeviceEnvironment, s.ordered, s.knownDevice)
	rt.json(get, "/api/environment/list/", s.getEnvironmentList, s.read)

	// Lifeguard: device state machines (proposed from any node).
	rt.json(get, "/api/device/:id/event/:event/", s.deviceEvent, s.ordered, s.knownDevice)
	rt.json(post, "/api/device/:id/event/:event/", s.deviceEvent, s.ordered, s.knownDevice)
	rt.json(post, "/api/device/:id/state-change/:old/to/:new/", s.stateChange, s.ordered, s.knownDevice)
	rt.json(get, "/api/lifeguard/states/", s.getLifeguardStates)
	rt.json(post, "/api/device/:id/register/", s.postRegister, s.ordered)

	// BMM: hardware operations run on the owning imaging server.
	rt.owned(post, "/api/device/:id/power-cycle/", s.deviceOwner, s.postPowerCycle)
	rt.owned(get, "/api/device/:id/power-off/", s.deviceOwner, s.getPowerOff)
	rt.owned(post, "/api/device/:id/clear-pxe/", s.deviceOwner, s.postClearPXE)
	rt.owned(get, "/api/device/:id/ping/", s.deviceOwner, s.getPing)
	rt.owned(get, "/api/relay/:board/test/", s.boardOwner, s.getRelayTest)
	rt.raw(get, "/api/device/:id/bootconfig", s.getBootConfig) // verbatim, no 303; gated itself
	rt.raw(get, "/api/device/:id/bootconfig/", s.getBootConfig)

	// Requests (the Mozpool layer): any node serves every route.
	rt.json(post, "/api/device/:id/request/", s.postRequest, s.validated)
	rt.json(get, "/api/request/:id/", s.getRequestList, listOnly("id"), s.read)
	rt.json(get, "/api/request/:id/details/", s.getRequestDetails, s.read)
	rt.json(get, "/api/request/:id/status/", s.getRequestStatus, s.read)
	rt.json(get, "/api/request/:id/log/", s.getRequestLog, s.read)
	rt.json(get, "/api/queue/", s.getQueue, s.read)
	rt.json(post, "/api/queue/weight/", s.postQueueWeight, s.ordered)
	rt.raw(post, "/api/request/:id/renew/", s.renewRequest) // no 303, as the original
	rt.raw(post, "/api/request/:id/renew", s.renewRequest)
	rt.raw(post, "/api/request/:id/return/", s.returnRequest)
	rt.raw(post, "/api/request/:id/return", s.returnRequest)
	rt.json(get, "/api/request/:id/event/:event/", s.requestEvent, s.ordered)
	rt.json(post, "/api/request/:id/event/:event/", s.requestEvent, s.ordered)

	// State-change events (Server-Sent Events): a stream, no 303.
	rt.raw(get, "/api/events/", s.getEvents)
	rt.raw(get, "/api/events", s.getEvents)

	// Images and PXE configs.
	rt.json(get, "/api/image/list/", s.getImageList, s.read)
	rt.json(post, "/api/image/", s.postImage, s.ordered)
	rt.json(get, "/api/bmm/pxe_config/:name/", s.getPXEConfigList, listOnly("name"), s.read)
	rt.json(get, "/api/bmm/pxe_config/:name/details/", s.getPXEConfigDetails, s.read)
	rt.json(post, "/api/bmm/pxe_config/", s.postPXEConfig, s.ordered)
	rt.json(post, "/api/bmm/pxe_config/:name/update/", s.postPXEConfigUpdate, s.ordered)
	rt.json(post, "/api/bmm/image_pxe_config/", s.postImagePXEConfig, s.ordered)
	rt.json(post, "/api/inventory/sync/", s.postInventorySync, s.ordered)

	// Racks: which imaging server acts on each rack's boards.
	rt.json(get, "/api/rack/:rack/", s.getRackList, listOnly("rack"), s.read)
	rt.json(get, "/api/rack/:rack/details/", s.getRack, s.read)
	rt.json(post, "/api/rack/:rack/move/", s.postRackMove, s.ordered)

	// Cluster.
	rt.json(get, "/api/cluster/status/", s.getClusterStatus)
	rt.both(get, "/api/cluster/health", s.getClusterHealth) // monitors: no 303
	rt.json(get, "/api/cluster/self/", s.getClusterSelf)
	rt.json(post, "/api/cluster/join/", s.postClusterJoin)
	rt.json(post, "/api/cluster/remove/", s.postClusterRemove)
	rt.json(post, "/api/cluster/transfer-leader/", s.postTransferLeader)
	rt.raw(get, "/api/cluster/backup/", s.getBackup) // a file, not JSON: no 303
	rt.json(post, "/api/cluster/restore/", s.postRestore)
	rt.json(get, "/api/cluster/policy/", s.getPolicy)
	rt.json(post, "/api/cluster/policy/", s.postPolicy)
	rt.mount(get, "/_cluster/*path", s.cluster.Handler())
	rt.mount(post, "/_cluster/*path", s.cluster.Handler())

	// API tokens.
	rt.json(get, "/api/token/:name/", s.getTokenList, listOnly("name"))
	rt.json(post, "/api/token/", s.postToken)
	rt.json(post, "/api/token/:name/revoke/", s.postTokenRevoke)

	return r
}

// Route is one method and path pattern the router serves, as registered
// (httprouter syntax: ":name" is a parameter, "*name" a catch-all).
type Route struct {
	Method string
	Path   string
}

// Routes lists every method and path pattern the server registers, both
// spellings of each JSON route included, in registration order. Tests walk
// it so that no route escapes them.
func (s *Server) Routes() []Route { return slices.Clone(s.routeList) }

// routeTable registers routes on the router with the server's adapter and
// records each one in list (and, as "METHOD path", in registered). Every
// registration goes through guard, which applies the route's line of the
// permission table (permissions.go).
type routeTable struct {
	s          *Server
	r          *httprouter.Router
	list       *[]Route
	registered *[]string
}

func (rt routeTable) handle(method, path string, h httprouter.Handle) {
	rt.r.Handle(method, path, rt.guard(method, path, h))
	*rt.list = append(*rt.list, Route{Method: method, Path: path})
	*rt.registered = append(*rt.registered, method+" "+path)
}

// raw registers a handle as it is, behind its permission: no checks, no
// redirect.
func (rt routeTable) raw(method, path string, h httprouter.Handle) { rt.handle(method, path, h) }

// json registers a JSON route at path (which ends in "/") and its
// slash-less spelling. The checks run first, in order; then a slash-less
// request is answered 303 to path + "/" + query; then h runs.
func (rt routeTable) json(method, path string, h handlerFunc, checks ...check) {
	wrapped := func(r *http.Request, ps httprouter.Params) (any, error) {
		for _, c := range checks {
			if err := c(r, ps); err != nil {
				return nil, err
			}
		}
		if rep, ok := redirectSlash(r); ok {
			return rep, nil
		}
		return h(r, ps)
	}
	rt.handle(method, path, rt.s.handle(wrapped))
	rt.handle(method, strings.TrimSuffix(path, "/"), rt.s.handle(wrapped))
}

// both registers h at path with and without a trailing slash, answering
// both directly.
func (rt routeTable) both(method, path string, h handlerFunc) {
	path = strings.TrimSuffix(path, "/")
	rt.handle(method, path, rt.s.handle(h))
	rt.handle(method, path+"/", rt.s.handle(h))
}

// mount hands every path matching a catch-all pattern to h.
func (rt routeTable) mount(method, path string, h http.Handler) {
	rt.raw(method, path, func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { h.ServeHTTP(w, r) })
}
