package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"syscall"
)

// StatusOf names the status that err, the error of a failed connection to a target, means
// to a client, so that the server's replies and a client's reports of its own direct dials
// say the same thing:
//
//   - an error that matches one of this package's status errors (a *Error from the peer, a
//     policy refusal that unwraps to ErrDenied, ...): that status;
//   - a name that did not resolve (*net.DNSError): StatusDNSFailure;
//   - ECONNREFUSED: StatusRefused;
//   - no route (EHOSTUNREACH, ENETUNREACH, ENETDOWN, EHOSTDOWN, EADDRNOTAVAIL):
//     StatusUnreachable;
//   - a timeout (ETIMEDOUT, a deadline, a net.Error that says so): StatusTimeout;
//   - a TLS alert, a bad record, a certificate that did not verify: StatusTLSFailure;
//   - anything else once ctx has ended (the dialing side is shutting down): StatusInternal.
//
// known is false, and the status StatusUnreachable, when err is none of these: the dial
// failed for a reason without a status of its own. The server reports it as unreachable; a
// client may report its own errors (the tunnel lost, say) otherwise.
func StatusOf(ctx context.Context, err error) (status Status, known bool) {
	if err == nil {
		return StatusOK, true
	}
	for s := StatusAuthFailed; s <= StatusInternal; s++ {
		if errors.Is(err, s.Err()) {
			return s, true
		}
	}
	var dnsErr *net.DNSError
	var ne net.Error
	var alert tls.AlertError
	var record tls.RecordHeaderError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &dnsErr):
		return StatusDNSFailure, true
	case errors.Is(err, syscall.ECONNREFUSED):
		return StatusRefused, true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.ENETDOWN), errors.Is(err, syscall.EHOSTDOWN),
		errors.Is(err, syscall.EADDRNOTAVAIL):
		return StatusUnreachable, true
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return StatusTimeout, true
	case errors.As(err, &alert), errors.As(err, &record), errors.As(err, &verify):
		return StatusTLSFailure, true
	case ctx.Err() != nil:
		return StatusInternal, true
	}
	return StatusUnreachable, false
}
