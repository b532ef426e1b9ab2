package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mozpool/mozpool/fsm"
	"github.com/mozpool/mozpool/sim"
)

type options struct {
	inventory      string
	writeInventory string
	listen         string
	logJSON        bool
	logLevel       string
	// shard, shards: simulate only shard `shard` of `shards` (-shard i/n).
	shard, shards int
	cfg           sim.Config
}

func parseFlags(args []string) (*options, error) {
	o := &options{cfg: sim.DefaultConfig()}
	c := &o.cfg
	var api, caCert, shard string
	fs := flag.NewFlagSet("mozpool-sim", flag.ContinueOnError)
	fs.StringVar(&o.inventory, "inventory", "", "lab inventory JSON file; every device needs relay_info and ip_address (required)")
	fs.StringVar(&api, "api", "", "comma-separated cluster node URLs, to find the imaging servers' HTTP, TFTP and syslog addresses (required)")
	fs.StringVar(&caCert, "ca-cert", os.Getenv("MOZPOOL_CA_CERT"), "PEM file of the cluster's CA, for nodes that serve HTTPS (default $MOZPOOL_CA_CERT)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "ground-truth HTTP listen address")
	fs.StringVar(&o.writeInventory, "write-inventory", "", "write the inventory with the relay boards' bound ports to this file")
	fs.Float64Var(&c.TimeScale, "time-scale", c.TimeScale, "multiply every simulated delay (0.1: a 60 s phase takes 6 s)")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "random seed: delays, failures and the broken boards")
	fs.Float64Var(&c.BrokenFraction, "broken", c.BrokenFraction, "fraction of boards permanently broken (never answer ping or SUT)")
	fs.StringVar(&c.SDImage, "sd-image", c.SDImage, "image on every board's SD card at start")
	fs.IntVar(&c.PingPort, "ping-port", c.PingPort, "TCP port that answers ping on each board's address")
	fs.IntVar(&c.SUTPort, "sut-port", c.SUTPort, "SUT agent TCP port on each board's address")
	fs.DurationVar(&c.RelayRecovery, "relay-recovery", c.RelayRecovery, "relay boards' pause after each connection")
	fs.DurationVar(&c.Discovery, "discovery", c.Discovery, "how often to re-read the cluster status")
	fs.Float64Var(&c.Failures.Booting, "fail-booting", c.Failures.Booting, "failure probability while booting (u-boot)")
	fs.Float64Var(&c.Failures.MobileInit, "fail-mobile-init", c.Failures.MobileInit, "failure probability after mobile_init_started")
	fs.Float64Var(&c.Failures.Downloading, "fail-downloading", c.Failures.Downloading, "failure probability while downloading an image")
	fs.Float64Var(&c.Failures.Extracting, "fail-extracting", c.Failures.Extracting, "failure probability while extracting an image")
	fs.Float64Var(&c.Failures.Rebooting, "fail-rebooting", c.Failures.Rebooting, "failure probability while rebooting after imaging")
	fs.Float64Var(&c.Failures.Running, "fail-running", c.Failures.Running, "probability that a board running its SD image reboots by itself")
	fs.Float64Var(&c.Failures.SelfTestOK, "self-test-ok", c.Failures.SelfTestOK, "probability that a self-test passes")
	fs.Float64Var(&c.Failures.SelfTestFailed, "self-test-failed", c.Failures.SelfTestFailed, "probability that a self-test reports failure (the rest hang)")
	fs.BoolVar(&c.Syslog, "syslog", c.Syslog, "send each board's boot messages to its imaging server's syslog receiver (-syslog=false: off)")
	fs.StringVar(&shard, "shard", "0/1", "simulate only part i/n of the lab: the boards of every n-th relay board, from the i-th (n processes, i = 0..n-1, run the whole lab)")
	fs.BoolVar(&o.logJSON, "log-json", false, "log as JSON lines")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.inventory == "" {
		return nil, errors.New("-inventory is required")
	}
	if _, err := fmt.Sscanf(shard, "%d/%d", &o.shard, &o.shards); err != nil || o.shards < 1 || o.shard < 0 || o.shard >= o.shards {
		return nil, fmt.Errorf("-shard %q: want i/n with 0 <= i < n", shard)
	}
	for _, u := range strings.Split(api, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.API = append(c.API, u)
		}
	}
	if len(c.API) == 0 {
		return nil, errors.New("-api is required")
	}
	if caCert != "" {
		pem, err := os.ReadFile(caCert)
		if err != nil {
			return nil, fmt.Errorf("-ca-cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca-cert: %s holds no PEM certificate", caCert)
		}
		c.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// loadInventory reads an inventory file as strictly as "mozpoolctl
// inventory sync" does: unknown keys are errors.
func loadInventory(path string) (fsm.Inventory, error) {
	var inv fsm.Inventory
	b, err := os.ReadFile(path)
	if err != nil {
		return inv, fmt.Errorf("read inventory: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&inv); err != nil {
		return inv, fmt.Errorf("inventory %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return inv, fmt.Errorf("inventory %s: data after the top-level object", path)
	}
	return inv, nil
}

// writeInventory writes inv to path atomically, so that a script waiting
// for the file never reads half of it.
func writeInventory(path string, inv fsm.Inventory) error {
	b, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".inventory-*.json")
	if err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write inventory: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write inventory: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	return nil
}
