// Package transparent runs a program with every TCP connection it makes carried by a
// caller-supplied dial function, whether or not the program reads proxy variables: the
// program runs in network and mount namespaces of its own (and, when not root, a user
// namespace that maps only the caller's uid and gid), whose one route leads into a TUN
// device. A userspace TCP/IP stack (gVisor's netstack) outside the namespaces, in the
// caller's own network, terminates each connection the program makes and hands it to the
// dial function. Linux only; elsewhere every entry point returns ErrUnsupported.
//
// # Addresses inside the namespace
//
//	240.0.0.1, fd74:7078:7479::1   the gateway: the namespace's DNS server (UDP and TCP port 53),
//	                               and the machine's own loopback (a connection to the gateway's
//	                               port P goes to 127.0.0.1:P outside, when Local("127.0.0.1"))
//	240.0.0.2, fd74:7078:7479::2   the namespace's own address (on tun0)
//	240.128.0.0/9                  synthetic IPv4 addresses, one per name (see below)
//	fd74:7078:7479:1::/64          synthetic IPv6 addresses, one per name
//	127.0.0.1, ::1                 the namespace's own loopback, not the machine's
//
// 240.0.0.0/4 is reserved ("future use", RFC 1112) and never routed on the internet, so it
// does not shadow a real destination; fd74:7078:7479::/48 is a unique local (ULA) prefix.
//
// # DNS
//
// The namespace's /etc/resolv.conf names the gateway. A query for a name that Local accepts
// is answered from the machine's own resolver, with real addresses. Any other name gets a
// synthetic address (A and AAAA alike) that maps back to the name: a connection to it is
// dialed by name, so the proxy server resolves the name and no query for it leaves the
// machine. Answers carry a short TTL; the table of names is bounded, and a connection to a
// synthetic address the table no longer holds is reset. Only A, AAAA and PTR records for
// synthetic names are answered; other types get an empty answer.
//
// # Connections
//
// A connection waits for its dial before the program's connect returns, so that a target
// that cannot be reached refuses it (ECONNREFUSED), as a real one would. A connection to a
// target that took one within the last 30 seconds is accepted at once instead, and the
// program's first bytes travel with the dial (Config.DialEarly), which saves a round trip;
// should that dial fail after all, the program's connection is reset. Bytes are relayed
// both ways with half-close; an error on either side resets the other.
//
// # What is not carried
//
// UDP other than DNS to the gateway is refused: the stack answers with ICMP port
// unreachable, so a connected UDP socket sees ECONNREFUSED. ICMP is not carried either: an
// echo request (ping) gets ICMP host unreachable.
package transparent
