package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/mozpool/mozpool/api"
	"github.com/mozpool/mozpool/fsm"
)

// Hardware performs BMM operations on the devices and relay boards this node
// owns (bmm.Controller). Routes that need hardware run on the owner: any
// other node proxies the call there and returns its answer.
type Hardware interface {
	// StartPowerCycle and StartPowerOff check the device and start the
	// relay operation in the background.
	StartPowerCycle(device string) error
	StartPowerOff(device string) error
	SetPXE(ctx context.Context, device, pxeConfig string) error
	ClearPXE(ctx context.Context, device string) error
	Ping(ctx context.Context, device string) (bool, error)
	TestRelayBoard(ctx context.Context, board string) (bool, error)
}

var (
	// errNoHardware: this node was started without hardware access.
	errNoHardware = errors.New("this node has no hardware access")
	// errOwnerUnreachable: the owning node could not be reached.
	errOwnerUnreachable = errors.New("owning imaging server unreachable")
	// errNoOwnerNode: no cluster node serves the owning imaging server.
	errNoOwnerNode = errors.New("no node serves the owning imaging server")
	// errCatchingUp: this node has not applied the whole log yet.
	errCatchingUp = errors.New("node is catching up with the cluster")
)

// ownerFunc names the imaging server that owns a route's object.
type ownerFunc func(ps httprouter.Params) (string, error)

func (s *Server) deviceOwner(ps httprouter.Params) (string, error) {
	name := ps.ByName("id")
	var owner string
	var ok bool
	s.fsm.Read(func(st *fsm.State) {
		if d, found := st.Devices[name]; found {
			owner, ok = d.ImagingServer, true
		}
	})
	if !ok {
		return "", unknownDevice(name)
	}
	return owner, nil
}

func (s *Server) boardOwner(ps httprouter.Params) (string, error) {
	name := ps.ByName("board")
	var owner string
	var ok bool
	s.fsm.Read(func(st *fsm.State) {
		if b, found := st.RelayBoards[name]; found {
			owner, ok = b.ImagingServer, true
		}
	})
	if !ok {
		return "", fmt.Errorf("%w: %q", errUnknownBoard, name)
	}
	return owner, nil
}

// owned registers a route that must run on the node serving the owning
// imaging server. The owner lookup (404 for unknown ids) runs first; a
// request for another server's object is proxied there verbatim (not
// redirected: python-requests turns a redirected POST into a GET); then, on
// the owner, JSON routes answer a slash-less path with 303.
func (rt routeTable) owned(method, path string, owner ownerFunc, h handlerFunc) {
	s := rt.s
	handle := func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		// The owner is looked up in the local state: not before the node
		// has caught up since its start (it might 404 a known device or
		// send the call to a former owner).
		var server string
		err := s.validated(r, ps)
		if err == nil {
			server, err = owner(ps)
			if err != nil && s.cluster.Health() != nil {
				// A node that lags again may not know the device
				// yet: ask the client to retry, not 404.
				err = fmt.Errorf("%w: %v", errCatchingUp, err)
			}
		}
		if err == nil {
			var local bool
			local, err = s.proxyToOwner(w, r, server)
			if err == nil && !local {
				return // the owner answered
			}
		}
		s.handle(func(r *http.Request, ps httprouter.Params) (any, error) {
			if err != nil {
				return nil, err
			}
			if rep, ok := redirectSlash(r); ok {
				return rep, nil
			}
			return h(r, ps)
		})(w, r, ps)
	}
	rt.raw(method, path, handle)
	rt.raw(method, path[:len(path)-1], handle)
}

// proxyToOwner returns local=true when this node serves server. Otherwise it
// forwards the request to the node that does and writes its answer.
func (s *Server) proxyToOwner(w http.ResponseWriter, r *http.Request, server string) (local bool, err error) {
	self := s.cluster.Self()
	if server == self.Name {
		return true, nil
	}
	var target string
	s.fsm.Read(func(st *fsm.State) {
		if srv, ok := st.Servers[server]; ok && srv.NodeID != "" {
			target = srv.HTTPAddr
		}
	})
	if target == "" {
		return false, fmt.Errorf("%w: %q", errNoOwnerNode, server)
	}
	if r.Header.Get(api.HeaderForwarded) != "" {
		// The sender thinks we own it and we think we do not: our views
		// differ for a moment (a node moved). Do not bounce it around.
		return false, fmt.Errorf("%w: %q is not served here", errNoOwnerNode, server)
	}
	u, err := url.Parse(target)
	if err != nil {
		return false, fmt.Errorf("%w: bad address %q", errOwnerUnreachable, target)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = u.Host
			pr.Out.Header.Set(api.HeaderForwarded, self.ID)
		},
		Transport: s.proxyTransport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.writeError(w, r, fmt.Errorf("%w: %s (%s): %v", errOwnerUnreachable, server, target, err))
		},
	}
	proxy.ServeHTTP(w, r)
	return false, nil
}

func (s *Server) hardware() (Hardware, error) {
	if s.hw == nil {
		return nil, errNoHardware
	}
	return s.hw, nil
}

// postPowerCycle: body {} power-cycles with the PXE file removed (boot from
// the SD card); {"pxe_config": name, "boot_config": str} first sets the
// device's next boot config and writes the PXE file. The relay operation
// runs in the background; lifeguard state is not touched.
func (s *Server) postPowerCycle(r *http.Request, ps httprouter.Params) (any, error) {
	hw, err := s.hardware()
	if err != nil {
		return nil, err
	}
	dev := ps.ByName("id")
	var body map[string]json.RawMessage
	if err := decodeObject(r, &body, maxBodyBytes); err != nil {
		return nil, err
	}
	if _, ok := body["pxe_config"]; ok {
		pxe, err := stringField(body, "pxe_config")
		if err != nil {
			return nil, err
		}
		bootConfig := ""
		if _, ok := body["boot_config"]; ok {
			if bootConfig, err = stringField(body, "boot_config"); err != nil {
				return nil, err
			}
		}
		var known bool
		s.fsm.Read(func(st *fsm.State) { _, known = st.PXEConfigs[pxe] })
		if !known && s.ownWrites(r.Context(), fsm.CmdPXEConfigUpsert) == nil {
			// A PXE config this node has just created may not be
			// applied here yet: look again once it is.
			s.fsm.Read(func(st *fsm.State) { _, known = st.PXEConfigs[pxe] })
		}
		if !known {
			return nil, badRequestf("unknown pxe config %q", pxe)
		}
		_, err = s.apply(r, fsm.CmdDeviceSetNextBoot, &fsm.DeviceSetNextBoot{Device: dev, BootConfig: bootConfig})
		if err != nil {
			return nil, err
		}
		if err := hw.SetPXE(r.Context(), dev, pxe); err != nil {
			return nil, err
		}
	} else if err := hw.ClearPXE(r.Context(), dev); err != nil {
		return nil, err
	}
	if err := hw.StartPowerCycle(dev); err != nil {
		return nil, err
	}
	s.auditHardware(r, dev, "power-cycle requested")
	return struct{}{}, nil
}

func (s *Server) getPowerOff(r *http.Request, ps httprouter.Params) (any, error) {
	hw, err := s.hardware()
	if err != nil {
		return nil, err
	}
	if err := hw.StartPowerOff(ps.ByName("id")); err != nil {
		return nil, err
	}
	s.auditHardware(r, ps.ByName("id"), "power-off requested")
	return struct{}{}, nil
}

func (s *Server) postClearPXE(r *http.Request, ps httprouter.Params) (any, error) {
	if err := discardBody(r); err != nil { // body ignored, within the limit
		return nil, err
	}
	hw, err := s.hardware()
	if err != nil {
		return nil, err
	}
	if err := hw.ClearPXE(r.Context(), ps.ByName("id")); err != nil {
		return nil, err
	}
	s.auditHardware(r, ps.ByName("id"), "PXE file cleared")
	return struct{}{}, nil
}

// auditHardware files a line in the device's log naming who asked for a
// hardware operation (the FSM appends the caller). The operation has
// started whatever happens to the line: a failure is only logged.
func (s *Server) auditHardware(r *http.Request, dev, what string) {
	entry := fsm.LogEntry{Kind: fsm.LogDevice, Name: dev, Source: "api", Message: what}
	cmd := &fsm.LogAppend{Entries: []fsm.LogEntry{entry}}
	cmd.Actor = callerOf(r).Actor()
	if _, err := s.cluster.Apply(r.Context(), fsm.CmdLogAppend, cmd); err != nil {
		s.logger.Warn("could not log a hardware operation", "device", dev, "operation", what, "error", err)
	}
}

// pingLimit is the hard limit of the ping route, as Mozpool's.
const pingLimit = 10 * time.Second

func (s *Server) getPing(r *http.Request, ps httprouter.Params) (any, error) {
	hw, err := s.hardware()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), pingLimit)
	defer cancel()
	ok, err := hw.Ping(ctx, ps.ByName("id"))
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	return api.Success{Success: ok}, nil
}

// relayTestLimit is the hard limit of the relay test route, as Mozpool's.
const relayTestLimit = 11 * time.Second

func (s *Server) getRelayTest(r *http.Request, ps httprouter.Params) (any, error) {
	hw, err := s.hardware()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), relayTestLimit)
	defer cancel()
	ok, err := hw.TestRelayBoard(ctx, ps.ByName("board"))
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	return api.Success{Success: ok}, nil
}

// getBootConfig serves the device's next boot config verbatim (the
// on-device second stage reads it), both with and without the trailing
// slash, as the original.
func (s *Server) getBootConfig(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	if err := s.read(r, ps); err != nil {
		s.writeError(w, r, err)
		return
	}
	name := ps.ByName("id")
	var cfg string
	var ok bool
	s.fsm.Read(func(st *fsm.State) {
		if d, found := st.Devices[name]; found {
			cfg, ok = d.NextBootConfig, true
		}
	})
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(s.answerIndex(), 10))
	if !ok {
		s.writeError(w, r, unknownDevice(name))
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(cfg)))
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(cfg))
}
