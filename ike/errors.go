package ike

import (
	"errors"
	"fmt"
)

// Sentinels a decode error wraps; test with errors.Is. Each says what a
// responder may answer (RFC 7296 §2.21, §3.10.1); ParseError.Notify builds
// the answer.
var (
	// ErrMalformed: the bytes break a length, count or layout rule of
	// RFC 7296 §3 or RFC 7383 §2.5, or a limit of this package (MaxPayloads
	// and friends). Answer: INVALID_SYNTAX, but only inside an authenticated
	// exchange (§2.21.1); a malformed IKE_SA_INIT request is dropped.
	ErrMalformed = errors.New("malformed IKE message")

	// ErrUnsupportedCritical: a payload of an unknown type has its critical
	// bit set (§2.5, §3.2). Answer: UNSUPPORTED_CRITICAL_PAYLOAD with the
	// payload type (ParseError.Type) as its data.
	ErrUnsupportedCritical = errors.New("unsupported critical payload")

	// ErrInvalidMajorVersion: the header's major version is above 2 (§2.5).
	// Answer: INVALID_MAJOR_VERSION in a version 2 message. A major version
	// below 2 (IKEv1) is ErrMalformed: it is not ours to answer.
	ErrInvalidMajorVersion = errors.New("invalid major version")

	// ErrEncode: Append was given a value that has no valid encoding (a
	// field too long for its length field, an address of the wrong family,
	// an SK payload that is not last, ...).
	ErrEncode = errors.New("cannot encode IKE message")
)

// ParseError is every error Decode, DecodePayloads and ParseHeader return.
// Offset counts from the start of the bytes given to them.
type ParseError struct {
	Offset int         // where the offending field or structure starts
	Type   PayloadType // the payload being parsed; PayloadNone for the header
	What   string      // what was wrong, for people
	Err    error       // ErrMalformed, ErrUnsupportedCritical or ErrInvalidMajorVersion
}

func (e *ParseError) Error() string {
	where := "header"
	if e.Type != PayloadNone {
		where = e.Type.String() + " payload"
	}
	return fmt.Sprintf("ike: %v at offset %d (%s): %s", e.Err, e.Offset, where, e.What)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Notify returns the error notification a responder can answer the message
// with (RFC 7296 §3.10.1): UNSUPPORTED_CRITICAL_PAYLOAD carrying the payload
// type, INVALID_MAJOR_VERSION, or INVALID_SYNTAX. Whether to send it at all
// is the caller's choice (§2.21: never in answer to a response, and
// INVALID_SYNTAX only in an authenticated exchange).
func (e *ParseError) Notify() *Notify {
	switch {
	case errors.Is(e.Err, ErrUnsupportedCritical):
		return &Notify{NotifyType: UNSUPPORTED_CRITICAL_PAYLOAD, Data: []byte{byte(e.Type)}}
	case errors.Is(e.Err, ErrInvalidMajorVersion):
		return &Notify{NotifyType: INVALID_MAJOR_VERSION}
	default:
		return &Notify{NotifyType: INVALID_SYNTAX}
	}
}

func malformed(off int, t PayloadType, format string, args ...any) error {
	return &ParseError{Offset: off, Type: t, What: fmt.Sprintf(format, args...), Err: ErrMalformed}
}

func encodeErr(format string, args ...any) error {
	return fmt.Errorf("ike: %w: %s", ErrEncode, fmt.Sprintf(format, args...))
}
