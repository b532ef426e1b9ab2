package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/mozpool/mozpool/internal/tlsutil"
)

// writeNew writes data to path, refusing to overwrite a file.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: not overwritten", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func runTLSCA(_ context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	dir := fs.String("dir", ".", "`directory` to write ca.pem and ca-key.pem in")
	days := fs.Int("days", int(tlsutil.CAValidity/(24*time.Hour)), "validity in `days`")
	name := fs.String("name", "Mozpool cluster CA", "the CA's common `name`")
	if _, err := e.parse(fs, args); err != nil {
		return err
	}
	if *days < 1 {
		return usagef("--days must be at least 1")
	}
	cert, key, err := tlsutil.CreateCA(*name, time.Duration(*days)*24*time.Hour)
	if err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(*dir, "ca.pem"), filepath.Join(*dir, "ca-key.pem")
	if err := writeNew(keyPath, key, 0o600); err != nil {
		return err
	}
	if err := writeNew(certPath, cert, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s (give it to every node and client) and %s (keep it off the nodes)\n", certPath, keyPath)
	return nil
}

func runTLSCert(_ context.Context, e *env, args []string) error {
	fs := e.commandFlags()
	node := fs.String("node", "", "the node's `name` (its imaging server name; required)")
	dns := fs.String("dns", "", "more DNS `names`, comma-separated (the names clients use for the node)")
	ips := fs.String("ip", "", "more IP `addresses`, comma-separated")
	caPath := fs.String("ca", "ca.pem", "the CA certificate `file`")
	caKeyPath := fs.String("ca-key", "ca-key.pem", "the CA key `file`")
	dir := fs.String("dir", ".", "`directory` to write NODE.pem and NODE-key.pem in")
	days := fs.Int("days", int(tlsutil.CertValidity/(24*time.Hour)), "validity in `days`")
	if _, err := e.parse(fs, args); err != nil {
		return err
	}
	if *node == "" {
		return usagef("--node is required")
	}
	if *days < 1 {
		return usagef("--days must be at least 1")
	}
	var addrs []net.IP
	for _, s := range splitList(*ips) {
		ip := net.ParseIP(s)
		if ip == nil {
			return usagef("--ip: %q is not an IP address", s)
		}
		addrs = append(addrs, ip)
	}
	caCert, err := os.ReadFile(*caPath)
	if err != nil {
		return err
	}
	caKey, err := os.ReadFile(*caKeyPath)
	if err != nil {
		return err
	}
	cert, key, err := tlsutil.CreateNodeCert(caCert, caKey, *node, splitList(*dns), addrs, time.Duration(*days)*24*time.Hour)
	if err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(*dir, *node+".pem"), filepath.Join(*dir, *node+"-key.pem")
	if err := writeNew(keyPath, key, 0o600); err != nil {
		return err
	}
	if err := writeNew(certPath, cert, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s and %s\n", certPath, keyPath)
	return nil
}
