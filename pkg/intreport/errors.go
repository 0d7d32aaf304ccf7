package intreport

import (
	"errors"
	"fmt"
)

// Sentinels for decoding failures; match them with errors.Is.
var (
	// ErrTruncated: the payload ends before a header, field or report does.
	ErrTruncated = errors.New("truncated")
	// ErrMalformed: a field holds a value that contradicts the format.
	ErrMalformed = errors.New("malformed")
	// ErrUnknownMetadata: a v2.0 RepMdBits bit whose size is unknown is set,
	// so the metadata after it cannot be located.
	ErrUnknownMetadata = errors.New("metadata of unknown size")
	// ErrUnsupportedVersion: the report is not v0.5 or v2.0 (v1.0 included).
	ErrUnsupportedVersion = errors.New("unsupported telemetry report version")
)

// FieldError locates a decoding failure. Err is one of the sentinels.
type FieldError struct {
	Field  string // what was being decoded
	Offset int    // byte offset in the payload where it starts
	Need   int    // bytes needed, when Err is ErrTruncated
	Have   int    // bytes available, when Err is ErrTruncated
	Detail string // what was wrong, when Err is not ErrTruncated
	Err    error
}

// Error describes the field, where it starts and what was wrong.
func (e *FieldError) Error() string {
	if errors.Is(e.Err, ErrTruncated) {
		return fmt.Sprintf("telemetry report %s at offset %d: %v: need %d bytes, have %d",
			e.Field, e.Offset, e.Err, e.Need, e.Have)
	}
	return fmt.Sprintf("telemetry report %s at offset %d: %v: %s", e.Field, e.Offset, e.Err, e.Detail)
}

// Unwrap returns the sentinel.
func (e *FieldError) Unwrap() error { return e.Err }

// VersionError reports a Ver field this package does not decode.
type VersionError struct {
	Version uint8 // the 4-bit Ver field
}

// Error names the version and the supported ones.
func (e *VersionError) Error() string {
	name := ""
	if e.Version == 1 {
		name = " (v1.0)"
	}
	return fmt.Sprintf("telemetry report version %d%s: %v (want 0 for v0.5 or 2 for v2.0)",
		e.Version, name, ErrUnsupportedVersion)
}

// Unwrap returns ErrUnsupportedVersion.
func (e *VersionError) Unwrap() error { return ErrUnsupportedVersion }

func truncated(field string, offset, need, have int) error {
	return &FieldError{Field: field, Offset: offset, Need: need, Have: have, Err: ErrTruncated}
}

func malformed(field string, offset int, format string, args ...any) error {
	return &FieldError{Field: field, Offset: offset, Detail: fmt.Sprintf(format, args...), Err: ErrMalformed}
}
