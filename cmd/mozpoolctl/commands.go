package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one subcommand. Names of two words ("pxe-config add") are
// looked up before names of one.
type command struct {
	name    string
	aliases []string
	args    string // synopsis after the name
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands is the command table, in the order help lists them.
var commands = []*command{
	{name: "status", aliases: []string{"members"}, summary: "show the cluster's servers, leader, indexes and device counts", run: runStatus},
	{name: "join", args: "NODE_URL [--id ID --raft ADDR] [--name NAME] [--rack RACK]", summary: "add the node at NODE_URL to the cluster", run: runJoin},
	{name: "health", summary: "exit 0 when the node knows a leader and is caught up, 1 otherwise", run: runHealth},
	{name: "remove", args: "ID", summary: "remove a node from the cluster", run: runRemove},
	{name: "backup", args: "FILE", summary: "write a snapshot of the cluster state to FILE (token)", run: runBackup},
	{name: "restore", args: "FILE --yes", summary: "replace the whole cluster state with a backup (token)", run: runRestore},
	{name: "inventory sync", args: "[--dry-run] [--ship-it] FILE", summary: "merge a JSON lab inventory (see lab/README.md)", run: runInventorySync},
	{name: "pxe-config add", args: "NAME (--contents-file F | --contents S) [--description D] [--inactive]", summary: "add a PXE config", run: runPXEConfigAdd},
	{name: "pxe-config modify", args: "NAME [--contents-file F | --contents S] [--description D] [--active | --inactive]", summary: "modify a PXE config", run: runPXEConfigModify},
	{name: "pxe-config show", args: "NAME", summary: "show a PXE config", run: runPXEConfigShow},
	{name: "pxe-config list", args: "[--active-only]", summary: "list PXE config names", run: runPXEConfigList},
	{name: "pxe-config map", args: "IMAGE HWTYPE HWMODEL PXECONFIG", summary: `map an image on a hardware type to a PXE config ("" removes)`, run: runPXEConfigMap},
	{name: "image add", args: "NAME [--boot-config-keys a,b] [--can-reuse] [--hidden] [--has-sut-agent]", summary: "add or modify an image", run: runImageAdd},
	{name: "image list", args: "[--all]", summary: "list images (--all includes hidden ones)", run: runImageList},
	{name: "device list", args: "[--details]", summary: "list devices", run: runDeviceList},
	{name: "device show", args: "NAME", summary: "show a device", run: runDeviceShow},
	{name: "device set-comments", args: "NAME TEXT", summary: `set a device's comments ("" clears)`, run: runDeviceSetComments},
	{name: "device set-environment", args: "NAME ENV", summary: "set a device's environment", run: runDeviceSetEnvironment},
	{name: "device please", args: "NAME EVENT [--image I [--boot-config JSON]]", summary: "send a please_* event (image, power_cycle, self_test, start_maintenance) to a device", run: runDevicePlease},
	{name: "device state", args: "NAME --from OLD --to NEW", summary: "force a device from state OLD to NEW (fails if it is not in OLD)", run: runDeviceState},
	{name: "device power-cycle", args: "NAME", summary: "power-cycle a device through its relay (boots from its SD card)", run: runDevicePowerCycle},
	{name: "device power-off", args: "NAME", summary: "turn a device's power off through its relay", run: runDevicePowerOff},
	{name: "device ping", args: "NAME", summary: "ping a device from its imaging server (exit 1 when it does not answer)", run: runDevicePing},
	{name: "device log", args: "NAME [--lines N] [--follow]", summary: "show a device's log; --follow prints new lines until interrupted", run: runDeviceLog},
	// The two-word request commands come before "request" itself, which
	// would otherwise take "list", "show", ... as a device name.
	{name: "request list", args: "[--all]", summary: "list open requests (--all includes closed ones)", run: runRequestList},
	{name: "request show", args: "ID [--lines N]", summary: "show a request and its newest log lines", run: runRequestShow},
	{name: "request renew", args: "ID SECONDS", summary: "make a request expire SECONDS from now", run: runRequestRenew},
	{name: "request return", args: "ID", summary: "return a request's device (close the request)", run: runRequestReturn},
	{name: "request log", args: "ID [--lines N] [--follow]", summary: "show a request's log; --follow prints new lines until it is closed or failed", run: runRequestLog},
	{name: "events", args: "[--follow] [--since INDEX] [--kind K] [--device D] [--request R] [--imaging-server S] [--state S]",
		summary: "print device and request state changes (kept ones; --follow: as they happen)", run: runEvents},
	{name: "operator raft list-peers", summary: "list the Raft servers: node, id, address, leader or follower, voter", run: runRaftListPeers},
	{name: "operator raft remove-peer", args: "ID | --id ID", summary: "remove a server from the Raft configuration (as remove; token)", run: runRaftRemovePeer},
	{name: "operator raft transfer-leader", args: "[--id ID]", summary: "have the leader hand leadership to ID, or to the most up-to-date voter (token)", run: runRaftTransferLeader},
	{name: "request", args: "any|NAME --image I [--env E] [--duration S] [--boot-config K=V ...] [--assignee A] [--priority P] [--group G] [--hardware-type T] [--hardware-model M] [--tag K=V ...] [--max-wait S] [--no-wait] [--wait]",
		summary: "request a device imaged with I; --wait follows it (queue position, ETA, imaging) until ready (exit 0) or failed (exit 1)", run: runRequest},
	{name: "queue weight", args: "GROUP WEIGHT", summary: "set a fair-share group's weight (0 resets it to 1; token)", run: runQueueWeight},
	{name: "queue", args: "[--group G] [--assignee A] [--device D] [--env E] [--image I] [--hardware-type T]",
		summary: "list the requests waiting for a board, in service order, with position and ETA", run: runQueue},
	{name: "rack show", args: "[RACK]", summary: "show the racks: servers (owner preference first), owner, ownership generation, boards, servers down", run: runRackShow},
	{name: "rack move", args: "RACK SERVER [--generation N]", summary: "give a rack to one of its servers, e.g. before maintenance of its owner (operator token)", run: runRackMove},
	{name: "token create", args: "NAME [--role reader|user|operator|admin]", summary: "create an API token (admin); prints its secret, shown only once", run: runTokenCreate},
	{name: "token list", summary: "list API tokens: name, role, creation (admin)", run: runTokenList},
	{name: "token revoke", args: "NAME", summary: "revoke an API token (admin)", run: runTokenRevoke},
	{name: "policy", args: "[open|strict]", summary: "show the cluster's access policy, or set it (admin)", run: runPolicy},
	{name: "whoami", summary: "show who the node takes this token for, and the policy", run: runWhoami},
	{name: "tls ca", args: "[--dir D] [--days N]", summary: "create the cluster's CA: D/ca.pem and D/ca-key.pem", run: runTLSCA},
	{name: "tls cert", args: "--node NAME [--dns a,b] [--ip x,y] [--ca ca.pem --ca-key ca-key.pem] [--dir D] [--days N]", summary: "create a node certificate signed by the CA: D/NAME.pem and D/NAME-key.pem", run: runTLSCert},
	{name: "relay", args: "powercycle|status|turnon|turnoff HOST[:PORT] BANK RELAY", summary: "power-cycle, switch or read a relay over ProXR, straight to the board (60 s deadline)", run: runRelay},
}

// findCommand returns the command named by the first one or two words of
// args and the arguments that follow it.
func findCommand(args []string) (*command, []string, error) {
	for _, c := range commands {
		names := append([]string{c.name}, c.aliases...)
		for _, n := range names {
			words := strings.Fields(n)
			if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == n {
				return c, args[len(words):], nil
			}
		}
	}
	if len(args) >= 2 && isGroup(args[0]) {
		return nil, nil, fmt.Errorf("unknown command %q", args[0]+" "+args[1])
	}
	if isGroup(args[0]) {
		return nil, nil, fmt.Errorf("%s needs a subcommand", args[0])
	}
	return nil, nil, fmt.Errorf("unknown command %q", args[0])
}

// isGroup reports whether word is the first word of two-word commands.
func isGroup(word string) bool {
	for _, c := range commands {
		if first, _, two := strings.Cut(c.name, " "); two && first == word {
			return true
		}
	}
	return false
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `usage: mozpoolctl [--server URL] [--token TOKEN] [--json] [--stale] COMMAND [ARGS]

Global flags:
  --server URL   node to talk to (default $MOZPOOL_SERVER, else `+defaultServer+`)
  --token TOKEN  cluster token for join, remove, inventory sync, backup and restore (default $MOZPOOL_TOKEN)
  --json         print raw JSON instead of tables
  --stale        read the node's state as it is, even while it has not caught up
                 with the cluster since it started (it answers 503 otherwise)

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %s\n      %s", strings.TrimSpace(c.name+" "+c.args), c.summary)
		if len(c.aliases) > 0 {
			fmt.Fprintf(w, " (alias: %s)", strings.Join(c.aliases, ", "))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  help\n      show this help\n")
	fmt.Fprintln(w, "\nFlags may also follow a command's arguments. Run \"mozpoolctl COMMAND -h\" for details.")
}

// printCommandUsage prints one command's synopsis and, when the command
// got as far as declaring them, its flags.
func printCommandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: mozpoolctl %s\n  %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	if fs != nil {
		fmt.Fprintln(w, "Flags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}
