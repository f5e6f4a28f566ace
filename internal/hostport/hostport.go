// Package hostport holds the one port check and the one IPv6 bracket rule that every part of
// tessel-proxy applies to a host or a host:port it is given.
package hostport

import (
	"strconv"
	"strings"
)

// ParsePort reads a TCP port a client can connect to: a decimal number from 1 to 65535, with
// no sign, space or other decoration. Leading zeros are allowed (0443 is 443), as strconv
// reads them.
func ParsePort(s string) (uint16, bool) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint16(n), true
}

// Unbracket returns host without the square brackets that hold an IPv6 literal in a URL or
// in host:port ("[::1]" is "::1"), and whether it had them. Only a pair at both ends counts;
// whether what they held is an IPv6 address is for the caller to check.
func Unbracket(host string) (string, bool) {
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		return host[1 : len(host)-1], true
	}
	return host, false
}

// Bracket returns host as it is written before a :port or in a URL: an IPv6 literal (any host
// with a colon) in brackets, anything else as is. It is the host part of net.JoinHostPort.
func Bracket(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}
