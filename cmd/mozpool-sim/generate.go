package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mozpool/mozpool/sim"
)

// generate prints a generated lab inventory: mozpool-sim generate
// -servers a,b,c -boards N [-board-net 1] [-relay-net 2] [-relay-port 2101]
// [-standby].
func generate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mozpool-sim generate", flag.ContinueOnError)
	servers := fs.String("servers", "mobile-imaging-001,mobile-imaging-002,mobile-imaging-003", "comma-separated imaging server names, one rack each")
	boards := fs.Int("boards", 10, "boards per rack")
	boardNet := fs.Int("board-net", 1, "second octet of the boards' loopback addresses")
	relayNet := fs.Int("relay-net", 2, "second octet of the relay boards' loopback addresses")
	relayPort := fs.Int("relay-port", 2101, "relay boards' TCP port")
	standby := fs.Bool("standby", false, "give each rack the next server (in -servers order, wrapping) as its standby")
	if err := fs.Parse(args); err != nil {
		return err
	}
	inv, err := sim.GenerateInventory(sim.GenerateOptions{
		Servers: strings.Split(*servers, ","), BoardsPerServer: *boards,
		BoardNet: *boardNet, RelayNet: *relayNet, RelayPort: *relayPort, Standby: *standby,
	})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(inv); err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	return nil
}
