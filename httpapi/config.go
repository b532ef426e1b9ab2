package httpapi

import (
	"crypto/tls"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mozpool/mozpool/fsm"
)

// loggerName is the name of this package's sub-logger.
const loggerName = "httpapi"

// Config configures a Server.
type Config struct {
	// FSM is the local replica of the state; reads are served from it.
	// Required.
	FSM *fsm.FSM
	// Cluster proposes writes and answers the cluster endpoints. Required.
	Cluster Cluster
	// Logs answers device log queries. Required.
	Logs LogReader
	// Hardware performs BMM operations on this node's own devices. Nil:
	// the node has no hardware access and answers BMM routes for its own
	// devices with 503 (others are still proxied to their owner).
	Hardware Hardware
	// Logger receives request logs (debug) and server errors (error).
	// Default: a null logger.
	Logger hclog.Logger
	// Token is the cluster token: a caller presenting it (Authorization:
	// Bearer, or X-Mozpool-Token) is the bootstrap admin, named
	// ClusterTokenName. Other callers present API tokens (replicated in
	// the FSM) or none, as the permission table and the cluster's policy
	// allow (permissions.go). Empty means the node runs without
	// authentication: every caller may call every route, and New logs a
	// warning. Default: "".
	Token string
	// ClientTLS, when set, is the TLS configuration of calls proxied to
	// other nodes (the node's certificate, the cluster's CA).
	ClientTLS *tls.Config
	// Version is what GET /api/version/ reports. Default: "4.2.1", the
	// Mozpool release whose API this one reproduces.
	Version string
	// MinIndexWait bounds how long a request that sends
	// api.HeaderMinIndex waits for this node to apply that index before
	// it is answered 503. Default: 5s.
	MinIndexWait time.Duration
}

// DefaultConfig returns a Config with every optional field set to its
// default. The caller fills in FSM, Cluster and Logs.
func DefaultConfig() Config {
	return Config{
		Logger:       hclog.NewNullLogger(),
		Version:      "4.2.1",
		MinIndexWait: 5 * time.Second,
	}
}

// Validate reports the first problem with the configuration.
func (c *Config) Validate() error {
	switch {
	case c.FSM == nil:
		return errors.New("httpapi: FSM is required")
	case c.Cluster == nil:
		return errors.New("httpapi: Cluster is required")
	case c.Logs == nil:
		return errors.New("httpapi: Logs is required")
	case c.Version == "":
		return errors.New("httpapi: Version must not be empty")
	case c.MinIndexWait <= 0:
		return errors.New("httpapi: MinIndexWait must be positive")
	}
	return nil
}
