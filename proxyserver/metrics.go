package proxyserver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessel/tessel-proxy/wire"
)

// metrics are the server's Prometheus collectors. They exist even when Config.Metrics is
// nil (then nobody scrapes them), so the code that counts never checks.
type metrics struct {
	tunnelsOpen       prometheus.Gauge
	tunnelsTotal      *prometheus.CounterVec // by result
	handshakeFailures *prometheus.CounterVec // by stage
	streamsOpen       prometheus.Gauge
	streamsTotal      *prometheus.CounterVec // by status
	bytesIn           prometheus.Counter     // client -> target
	bytesOut          prometheus.Counter     // target -> client
}

// Tunnel results, the label values of tessel_proxy_tunnels_total.
const (
	resultOK              = "ok"
	resultAuthFailed      = "auth_failed"
	resultBadVersion      = "bad_version"
	resultHandshakeFailed = "handshake_failed"
	resultHandshakeLimit  = "handshake_limit" // closed at accept: MaxHandshakes in progress
	resultSourceLimit     = "source_limit"    // closed at accept: MaxHandshakesPerSource from its source
	resultEarlyDrop       = "early_drop"      // closed at accept: a random drop past HandshakeDropStart
	resultTunnelLimit     = "tunnel_limit"    // authenticated, refused: its identity's tunnels or budget
)

// Handshake stages, the label values of tessel_proxy_handshake_failures_total.
const (
	stageTLS   = "tls"
	stageHello = "hello"
	stageAuth  = "auth"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		tunnelsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tessel_proxy_tunnels_open",
			Help: "Tunnels authenticated and not yet closed.",
		}),
		tunnelsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessel_proxy_tunnels_total",
			Help: "Connections accepted, by how their handshake ended: ok, auth_failed, bad_version, handshake_failed, handshake_limit (closed at once: too many handshakes in progress), source_limit (closed at once: too many from its source), early_drop (closed at once: a random drop as the handshakes in progress near their maximum), tunnel_limit (authenticated, but its identity has its maximum of tunnels or no budget left).",
		}, []string{"result"}),
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessel_proxy_handshake_failures_total",
			Help: "Handshakes that failed, by stage: tls (TLS handshake or its deadline), hello (not a tessel-proxy client, bad version, deadline), auth (token refused).",
		}, []string{"stage"}),
		streamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tessel_proxy_streams_open",
			Help: "Streams being handled, across all tunnels.",
		}),
		streamsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessel_proxy_streams_total",
			Help: "Streams answered, by the status of the reply (ok, denied, refused, ...).",
		}, []string{"status"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessel_proxy_bytes_in_total",
			Help: "Payload bytes relayed from clients to targets.",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessel_proxy_bytes_out_total",
			Help: "Payload bytes relayed from targets to clients.",
		}),
	}
	// Label values known up front show as zero before the first event, so that a
	// dashboard's rate() has a series to start from.
	for _, r := range []string{resultOK, resultAuthFailed, resultBadVersion, resultHandshakeFailed, resultHandshakeLimit,
		resultSourceLimit, resultEarlyDrop, resultTunnelLimit} {
		m.tunnelsTotal.WithLabelValues(r)
	}
	for _, s := range []string{stageTLS, stageHello, stageAuth} {
		m.handshakeFailures.WithLabelValues(s)
	}
	for s := wire.StatusOK; s <= wire.StatusInternal; s++ {
		if s != wire.StatusAuthFailed && s != wire.StatusBadVersion {
			m.streamsTotal.WithLabelValues(statusLabel(s))
		}
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.tunnelsOpen, m.tunnelsTotal, m.handshakeFailures,
		m.streamsOpen, m.streamsTotal, m.bytesIn, m.bytesOut} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("proxyserver: register metrics: %w", err)
		}
	}
	return m, nil
}

// statusLabel names a status for metrics and logs: "ok", "dns_failure", ...
func statusLabel(s wire.Status) string {
	switch s {
	case wire.StatusOK:
		return "ok"
	case wire.StatusAuthFailed:
		return "auth_failed"
	case wire.StatusBadRequest:
		return "bad_request"
	case wire.StatusBadVersion:
		return "bad_version"
	case wire.StatusDNSFailure:
		return "dns_failure"
	case wire.StatusRefused:
		return "refused"
	case wire.StatusUnreachable:
		return "unreachable"
	case wire.StatusTimeout:
		return "timeout"
	case wire.StatusDenied:
		return "denied"
	case wire.StatusTLSFailure:
		return "tls_failure"
	case wire.StatusLimit:
		return "limit"
	}
	return "internal"
}
