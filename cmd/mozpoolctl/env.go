package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/mozpool/mozpool/client"
)

// env is what every command gets: the output streams and the global flags.
type env struct {
	stdout, stderr io.Writer
	server, token  string
	caCert         string
	json           bool
	stale          bool
	// index is the highest X-Mozpool-Index seen by the command's clients,
	// sent back as X-Mozpool-Min-Index so that a command never reads a
	// state older than one it has seen or written.
	index client.Index

	cmd *command
	fs  *flag.FlagSet // the command's flags, for its usage text
}

// usageError is a mistake in the command line: run prints it with the
// command's usage and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// globalFlags returns the flag set of the flags that come before the
// command, with the given defaults.
func (e *env) globalFlags(name, server, token string) *flag.FlagSet {
	if server == "" {
		server = defaultServer
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.server, "server", server, "node `URL`")
	fs.StringVar(&e.token, "token", token, "API `token` (or the cluster token)")
	fs.StringVar(&e.caCert, "ca-cert", os.Getenv("MOZPOOL_CA_CERT"), "PEM `file` of the CA to trust for an https:// server (default $MOZPOOL_CA_CERT; else the system's)")
	fs.BoolVar(&e.json, "json", false, "print raw JSON")
	fs.BoolVar(&e.stale, "stale", false, "read the node's state as it is, even before it has caught up with the cluster")
	return fs
}

// commandFlags returns a flag set for the current command. --json is
// accepted after the command too, where scripts tend to put it.
func (e *env) commandFlags() *flag.FlagSet {
	fs := flag.NewFlagSet(e.cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&e.json, "json", e.json, "print raw JSON")
	e.fs = fs
	return fs
}

// parse parses a command's flags, which may come before, between or after
// its positional arguments, and checks that there are exactly the named
// positional arguments.
func (e *env) parse(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...) // everything after "--" is positional
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < len(names):
		return nil, usagef("missing %s", strings.Join(names[len(pos):], " "))
	case len(pos) > len(names):
		return nil, usagef("unexpected argument %q", pos[len(names)])
	}
	return pos, nil
}

// client returns an API client for --server. The command's clients share
// the index they have seen; --stale makes their reads ask for ?stale.
func (e *env) client() *client.Client {
	opts := []client.Option{client.WithToken(e.token), client.WithIndex(&e.index)}
	if e.stale {
		opts = append(opts, client.WithStale())
	}
	return e.clientAt(e.server, opts...)
}

// clientAt returns a client for the node at url, trusting --ca-cert.
func (e *env) clientAt(url string, opts ...client.Option) *client.Client {
	if e.caCert != "" && strings.HasPrefix(url, "https://") {
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: e.transport()}))
	}
	return client.New(url, opts...)
}

// printJSON writes v as indented JSON to stdout.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table writes aligned columns to stdout; call flush when done.
type table struct{ tw *tabwriter.Writer }

func (e *env) table(header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)}
	t.row(toAny(header)...)
	return t
}

func (t *table) row(cols ...any) {
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprintln(t.tw)
}

func (t *table) flush() error { return t.tw.Flush() }

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// orDash returns s, or "-" when it is empty, so table cells never vanish.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// deref returns *p, or "" when p is nil.
func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// transport trusts --ca-cert; a file that cannot be read fails every call
// with the reason.
func (e *env) transport() http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	pem, err := os.ReadFile(e.caCert)
	pool := x509.NewCertPool()
	if err == nil && !pool.AppendCertsFromPEM(pem) {
		err = fmt.Errorf("%s holds no PEM certificate", e.caCert)
	}
	if err != nil {
		return failingTransport{fmt.Errorf("--ca-cert: %w", err)}
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr
}

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }
