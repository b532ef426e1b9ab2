// Package pxe writes per-device PXE boot configurations into a TFTP root and
// serves that root read-only over TFTP.
//
// Writer is what lifeguard's set_pxe and clear_pxe steps call:
// Set writes <root>/pxelinux.cfg/01-aa-bb-cc-dd-ee-ff for a device's MAC,
// with every %IPADDRESS% replaced by this imaging server's address, and Clear
// removes it so the board falls back to booting from its SD card. A file is
// always replaced atomically (temporary file in the same directory, then
// rename), so a board fetching its configuration over TFTP while lifeguard
// rewrites it gets either the old or the new file, never a mix. Files are
// not fsynced: they are derived from the replicated state, and a board
// whose file a crash of the host lost fails its network boot and is
// retried, which writes the file again. File names
// are built only from a validated MAC, so no caller input can name a path
// outside the root.
//
// Server is an embedded TFTP server for the same root, built on
// github.com/pin/tftp/v3, so an imaging server does not need a separate
// tftpd. It serves regular files under the root and nothing else: absolute
// names, ".." components, symbolic links that leave the root and write
// requests are refused (and logged at warn). Files are opened through an
// os.Root, so the kernel-level lookup cannot be redirected outside the root
// between the check and the open.
//
// Goroutines: Writer starts none; its methods run on the caller's goroutine.
// Server.Start starts one goroutine that reads requests from the UDP socket;
// pin/tftp starts one more per transfer, each ending when its transfer
// completes or times out (Config.Timeout × Config.Retries at worst).
// Server.Shutdown stops them all.
package pxe
