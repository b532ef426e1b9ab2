package pxe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

var (
	// ErrOutsideRoot is returned if a configuration path would lie outside
	// the TFTP root. Names are built only from validated MACs, so this
	// means a bug rather than bad input; the check is a second line of
	// defence.
	ErrOutsideRoot = errors.New("path outside the TFTP root")
)

const (
	// ConfigDir is the directory under the TFTP root that pxelinux (and
	// u-boot's "pxe get") search for per-device configurations.
	ConfigDir = "pxelinux.cfg"
	// IPAddressToken is replaced in every configuration by the imaging
	// server's IP address, as Mozpool's set_pxe does.
	IPAddressToken = "%IPADDRESS%"

	// fileMode is the mode of configuration files: TFTP servers other
	// than ours (tftp-hpa) run as an unprivileged user and must read them.
	fileMode fs.FileMode = 0o644
	// dirMode is the mode of ConfigDir when Set creates it.
	dirMode fs.FileMode = 0o755
)

// Writer writes and removes per-device PXE configurations under one TFTP
// root. Its methods are safe for concurrent use; concurrent Sets of the same
// MAC each replace the file whole, and the last rename wins.
type Writer struct {
	root     string
	serverIP string
}

// NewWriter returns a Writer for the TFTP root directory root (made
// absolute; it need not exist yet) that substitutes serverIP for
// IPAddressToken. Both are required.
func NewWriter(root, serverIP string) (*Writer, error) {
	if root == "" {
		return nil, errors.New("pxe: TFTP root is required")
	}
	if serverIP == "" {
		return nil, errors.New("pxe: server IP address is required")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("pxe: TFTP root %q: %w", root, err)
	}
	return &Writer{root: abs, serverIP: serverIP}, nil
}

// Root returns the absolute TFTP root directory.
func (w *Writer) Root() string { return w.root }

// Path returns the configuration file path for mac:
// <root>/pxelinux.cfg/01-aa-bb-cc-dd-ee-ff. It fails with ErrBadMAC for an
// invalid MAC.
func (w *Writer) Path(mac string) (string, error) {
	norm, err := NormalizeMAC(mac)
	if err != nil {
		return "", err
	}
	p := filepath.Join(w.root, ConfigDir, fileName(norm))
	rel, err := filepath.Rel(w.root, p)
	if err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w: %s", ErrOutsideRoot, p)
	}
	return p, nil
}

// Set writes contents, with every IPAddressToken replaced by the server IP,
// as the configuration for mac. It creates ConfigDir if it is missing. The
// file is replaced atomically: readers see the old file or the new one,
// never part of either. File operations cannot be interrupted, so ctx is
// checked before writing and again before the rename; if it is done by then
// the old file is left in place and ctx's error is returned.
func (w *Writer) Set(ctx context.Context, mac, contents string) error {
	p, err := w.Path(mac)
	if err != nil {
		return fmt.Errorf("set pxe config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set pxe config %s: %w", p, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), dirMode); err != nil {
		return fmt.Errorf("set pxe config: %w", err)
	}
	data := strings.ReplaceAll(contents, IPAddressToken, w.serverIP)
	if err := writeFileAtomic(ctx, p, []byte(data), fileMode); err != nil {
		return fmt.Errorf("set pxe config %s: %w", p, err)
	}
	return nil
}

// Clear removes the configuration for mac. A missing file is not an error,
// so Clear can be repeated.
func (w *Writer) Clear(ctx context.Context, mac string) error {
	p, err := w.Path(mac)
	if err != nil {
		return fmt.Errorf("clear pxe config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("clear pxe config %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clear pxe config: %w", err)
	}
	return nil
}

// Read returns the configuration currently written for mac, for tests and
// diagnostics. A missing file is an error matching fs.ErrNotExist.
func (w *Writer) Read(mac string) (string, error) {
	p, err := w.Path(mac)
	if err != nil {
		return "", fmt.Errorf("read pxe config: %w", err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read pxe config: %w", err)
	}
	return string(b), nil
}

// writeFileAtomic replaces path with data: it writes a temporary file in
// the same directory (so the rename cannot cross file systems), syncs it,
// renames it over path and syncs the directory so the rename survives a
// crash. The temporary file is removed on any failure.
func writeFileAtomic(ctx context.Context, path string, data []byte, mode fs.FileMode) (err error) {
	dir, base := filepath.Split(path)
	// The leading dot keeps pxelinux's lookups from ever matching a
	// half-written file by name.
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	// CreateTemp creates 0600; Chmod is not subject to the umask.
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	// No fsync: a PXE file is derived from the replicated state. Only a
	// crash of the host (not of the process) can lose it; a restarted node
	// runs the action of each board's current state again, which rewrites
	// it for a board about to be power-cycled, and a board that finds its
	// file gone fails its network boot and is retried, which rewrites it.
	// Two fsyncs (file and directory) at every board's imaging would
	// compete with the Raft log's for the disk.
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
