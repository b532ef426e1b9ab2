package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
)

var (
	// errUnauthenticated: no credentials, or ones no token matches. The
	// message is the same whether a token is missing, unknown or revoked.
	errUnauthenticated = errors.New("authentication required: send a valid token as Authorization: Bearer <token>")
	// errForbidden: the caller's role may not call the route (or act on
	// another identity's request).
	errForbidden = errors.New("forbidden")
)

// ClusterTokenName is the identity of a caller that presents the cluster
// token: the bootstrap admin.
const ClusterTokenName = "cluster-token"

// roleRank orders roles; anonymous callers rank 0.
func roleRank(role string) int { return slices.Index(fsm.Roles, role) + 1 }

// caller is who made a request, as the guard of its route found.
type caller struct {
	// Name is a token's name or "anonymous@<host>".
	Name      string
	Role      string // "" for anonymous callers
	Anonymous bool
}

// Actor is what the audit trail records for the caller.
func (c *caller) Actor() string { return c.Name }

// callInfo is put in the request's context by logRequests and filled in by
// the route's guard, so that the request's log line names the caller.
type callInfo struct{ c *caller }

type callKey struct{}

// callerOf returns the caller the guard found (anonymous if none ran).
func callerOf(r *http.Request) *caller {
	if ci, ok := r.Context().Value(callKey{}).(*callInfo); ok && ci.c != nil {
		return ci.c
	}
	return anonymousCaller(r)
}

func anonymousCaller(r *http.Request) *caller {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return &caller{Name: "anonymous@" + host, Anonymous: true}
}

// credential returns the token a request carries: Authorization: Bearer
// (the scheme in any case) or the older X-Mozpool-Token header.
func credential(h http.Header) string {
	if a := h.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return strings.TrimSpace(h.Get(api.HeaderToken))
}

// identify finds who is calling: the cluster token is the bootstrap
// admin; any other token must be one of the replicated tokens. No token is
// an anonymous caller; a token nothing matches is errUnauthenticated.
func (s *Server) identify(r *http.Request) (*caller, error) {
	secret := credential(r.Header)
	if secret == "" {
		return anonymousCaller(r), nil
	}
	if s.token != "" {
		g, w := sha256.Sum256([]byte(secret)), sha256.Sum256([]byte(s.token))
		if subtle.ConstantTimeCompare(g[:], w[:]) == 1 {
			return &caller{Name: ClusterTokenName, Role: fsm.RoleAdmin}, nil
		}
	}
	hash := fsm.HashToken(secret)
	var c *caller
	// A token this node has just created through the leader counts.
	if err := s.ownWrites(r.Context(), authCommands...); err != nil {
		return nil, err
	}
	s.fsm.Read(func(st *fsm.State) {
		if t := st.TokenByHash(hash); t != nil {
			c = &caller{Name: t.Name, Role: t.Role}
		}
	})
	if c == nil {
		return nil, errUnauthenticated
	}
	return c, nil
}

// policy is the cluster's access policy.
func (s *Server) policy() string {
	var p string
	s.fsm.Read(func(st *fsm.State) { p = st.EffectivePolicy() })
	return p
}

// authorize decides whether the request may call the route of p, and
// returns its caller. Without a cluster token configured the node runs
// without authentication (New has warned): every caller is let through.
func (s *Server) authorize(r *http.Request, ps httprouter.Params, p permission) (*caller, error) {
	if p.Anon == anonPublic {
		return anonymousCaller(r), nil
	}
	c, err := s.identify(r)
	if err != nil {
		if s.token == "" {
			return anonymousCaller(r), nil
		}
		return nil, err
	}
	if s.token == "" {
		return c, nil
	}
	// A policy change this node has just made through the leader counts.
	if err := s.ownWrites(r.Context(), authCommands...); err != nil {
		return nil, err
	}
	open := p.Anon != anonNever && s.policy() == fsm.PolicyOpen
	if c.Anonymous {
		if open || p.Anon == anonBoard && s.fromBoard(r, ps) {
			return c, nil
		}
		return nil, errUnauthenticated
	}
	// A token holder may do at least what an anonymous caller may.
	if roleRank(c.Role) >= roleRank(p.Role) || open {
		return c, nil
	}
	return nil, fmt.Errorf("%w: role %s may not %s %s (needs %s)", errForbidden, c.Role, r.Method, p.Path, p.Role)
}

// fromBoard reports whether the request comes from the address of the
// device the route names.
func (s *Server) fromBoard(r *http.Request, ps httprouter.Params) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ok := false
	s.fsm.Read(func(st *fsm.State) {
		if d, found := st.Devices[ps.ByName("id")]; found {
			ok = d.IPAddress != "" && d.IPAddress == host || d.FQDN == host
		}
	})
	return ok
}

// guard wraps the handle of a route with its permission check; every
// registration goes through it.
func (rt routeTable) guard(method, path string, h httprouter.Handle) httprouter.Handle {
	s := rt.s
	p, ok := lookupPermission(method, path)
	if !ok {
		s.logger.Error("route missing from the permission table: only admins may call it", "method", method, "path", path)
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		c, err := s.authorize(r, ps, p)
		if err != nil {
			s.handle(func(*http.Request, httprouter.Params) (any, error) { return nil, err })(w, r, ps)
			return
		}
		if ci, ok := r.Context().Value(callKey{}).(*callInfo); ok {
			ci.c = c
		} else {
			r = r.WithContext(context.WithValue(r.Context(), callKey{}, &callInfo{c: c}))
		}
		h(w, r, ps)
	}
}

// ownerCheck is the Caller field of a renewal or a return: operators may
// act on any request ("" lets the FSM skip the check), others only on
// their own and on those created anonymously.
func (s *Server) ownerCheck(r *http.Request) string {
	c := callerOf(r)
	if s.token == "" || roleRank(c.Role) >= roleRank(fsm.RoleOperator) {
		return ""
	}
	return c.Name
}

// getWhoami tells the caller who the server takes it for.
func (s *Server) getWhoami(r *http.Request, _ httprouter.Params) (any, error) {
	c := callerOf(r)
	return api.Whoami{Name: c.Name, Role: c.Role, Anonymous: c.Anonymous, Policy: s.policy()}, nil
}

func (s *Server) getPolicy(r *http.Request, _ httprouter.Params) (any, error) {
	if err := s.ownWrites(r.Context(), authCommands...); err != nil {
		return nil, err
	}
	return api.Policy{Policy: s.policy()}, nil
}

func (s *Server) postPolicy(r *http.Request, _ httprouter.Params) (any, error) {
	var body api.Policy
	if err := decodeObject(r, &body, maxBodyBytes); err != nil {
		return nil, err
	}
	if _, err := s.apply(r, fsm.CmdSetPolicy, &fsm.SetPolicy{Policy: body.Policy}); err != nil {
		return nil, err
	}
	return api.Policy{Policy: body.Policy}, nil
}

// getTokenList lists the tokens (never their secrets or hashes).
func (s *Server) getTokenList(r *http.Request, _ httprouter.Params) (any, error) {
	if err := s.ownWrites(r.Context(), authCommands...); err != nil {
		return nil, err
	}
	out := api.TokenList{Tokens: []api.Token{}}
	s.fsm.Read(func(st *fsm.State) {
		for _, t := range st.Tokens {
			out.Tokens = append(out.Tokens, api.Token{Name: t.Name, Role: t.Role, Created: t.Created})
		}
	})
	slices.SortFunc(out.Tokens, func(a, b api.Token) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// postToken creates a token: the secret is drawn here, only its hash is
// replicated, and the answer is the one time it is shown.
func (s *Server) postToken(r *http.Request, _ httprouter.Params) (any, error) {
	var body api.TokenCreate
	if err := decodeObject(r, &body, maxBodyBytes); err != nil {
		return nil, err
	}
	if body.Name == ClusterTokenName {
		return nil, badRequestf("token name %q is reserved", ClusterTokenName)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := "mzp_" + base64.RawURLEncoding.EncodeToString(raw)
	res, err := s.apply(r, fsm.CmdTokenCreate, &fsm.TokenCreate{Name: body.Name, Role: body.Role, Hash: fsm.HashToken(secret)})
	if err != nil {
		return nil, err
	}
	var t fsm.Token
	if err := res.Decode(&t); err != nil {
		return nil, err
	}
	return &reply{status: http.StatusCreated, body: api.Token{Name: t.Name, Role: t.Role, Created: t.Created, Secret: secret}}, nil
}

func (s *Server) postTokenRevoke(r *http.Request, ps httprouter.Params) (any, error) {
	if _, err := s.apply(r, fsm.CmdTokenRevoke, &fsm.TokenRevoke{Name: ps.ByName("name")}); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}
