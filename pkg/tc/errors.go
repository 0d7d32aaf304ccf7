package tc

import (
	"errors"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrInterfaceGone means the interface or its namespace disappeared before
// or during the call. Retrying cannot help.
var ErrInterfaceGone = errors.New("interface gone")

// goneError marks err as ErrInterfaceGone while keeping the cause reachable
// through errors.Is/As.
type goneError struct{ cause error }

func (e *goneError) Error() string   { return "interface gone: " + e.cause.Error() }
func (e *goneError) Unwrap() []error { return []error{ErrInterfaceGone, e.cause} }
func markGone(err error) error       { return &goneError{cause: err} }

// isNoDevice tells whether err is the kernel saying the device does not exist.
func isNoDevice(err error) bool {
	var notFound netlink.LinkNotFoundError
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) || errors.As(err, &notFound)
}

// classify marks errors that mean "the interface is gone".
func classify(err error) error {
	if err != nil && isNoDevice(err) && !errors.Is(err, ErrInterfaceGone) {
		return markGone(err)
	}
	return err
}
