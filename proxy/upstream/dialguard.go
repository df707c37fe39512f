package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// ErrAddressRefused is wrapped by every *AddressError.
var ErrAddressRefused = errors.New("address refused")

// AddressError is a connection pullgate would not open: a host that an upstream's answer
// named (a redirect target, a token realm) resolved to an address that upstream may not
// send pullgate to. Host is host:port, never a path or query.
type AddressError struct {
	Host   string
	Addr   netip.Addr
	Reason string
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("refused to connect to %s at %s: %s", e.Host, e.Addr, e.Reason)
}

func (e *AddressError) Unwrap() error { return ErrAddressRefused }

// reach orders addresses by how far inside a network they lead.
type reach int32

const (
	reachPublic   reach = iota
	reachPrivate        // RFC 1918, RFC 6598 shared space, IPv6 unique local
	reachLoopback       // this machine
	reachNever          // link-local (cloud metadata), unspecified, multicast, reserved
)

func (r reach) String() string {
	switch r {
	case reachPublic:
		return "a public address"
	case reachPrivate:
		return "a private address"
	case reachLoopback:
		return "a loopback address"
	}
	return "a link-local, unspecified, multicast or reserved address"
}

var (
	sharedSpace = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598, carrier-grade NAT
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")     // Linux connects 0.0.0.0 to this host
	reservedV4  = netip.MustParsePrefix("240.0.0.0/4")   // includes 255.255.255.255
	nat64       = netip.MustParsePrefix("64:ff9b::/96")  // RFC 6052: an IPv4 address inside
	siteLocal   = netip.MustParsePrefix("fec0::/10")     // deprecated, still routed internally
	awsMetadata = netip.MustParsePrefix("fd00:ec2::/32") // the metadata service over IPv6
	ipv4Compat  = netip.MustParsePrefix("::/96")         // deprecated IPv4-compatible form
)

// reachOf says how far inside a network a connection to a leads.
func reachOf(a netip.Addr) reach {
	a = a.Unmap()
	if nat64.Contains(a) || (ipv4Compat.Contains(a) && !a.IsUnspecified() && !a.IsLoopback()) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	switch {
	case !a.IsValid():
		return reachNever
	case a.IsLoopback():
		return reachLoopback
	case a.IsUnspecified(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsMulticast(),
		a.IsInterfaceLocalMulticast(), awsMetadata.Contains(a):
		return reachNever
	case a.Is4() && (thisNetwork.Contains(a) || reservedV4.Contains(a)):
		return reachNever
	case a.IsPrivate(), sharedSpace.Contains(a), siteLocal.Contains(a):
		return reachPrivate
	}
	return reachPublic
}

// dialGuard decides which addresses an upstream's transport connects to. The upstream's
// own host (its configured URL) and the operator's HTTP proxy are dialled as configured.
// Every other host was named by an upstream's answer (a blob redirect to storage, a token
// realm), so the upstream decides where pullgate connects: such a host may lead no
// further inside a network than the upstream itself. An upstream reached at a public
// address sends pullgate to public addresses only; one on a private network may name
// others on it (a registry and its object storage); link-local, unspecified, multicast
// and reserved addresses (the cloud metadata service, 0.0.0.0 that Linux connects to this
// host) are never dialled for an upstream. The check runs on the address each
// connection is really made to, after name resolution, so a name that resolves to an
// internal address is refused like the address itself.
type dialGuard struct {
	own    string // the upstream's host:port as the transport dials it, lower case
	dialer *net.Dialer

	// ownReach is 1 + the reach of the address the upstream was last connected at; 0
	// until the first connection.
	ownReach atomic.Int32

	mu      sync.Mutex
	proxies map[string]bool // host:port of the proxies ProxyFromEnvironment named

	// lookup resolves a host for the checks that cannot see the connected address;
	// fromEnv is the proxy the environment names for a request. Tests replace both.
	lookup  func(ctx context.Context, host string) ([]netip.Addr, error)
	fromEnv func(*http.Request) (*url.URL, error)
}

// guardDials makes t connect only where g allows, for the upstream at upstreamURL.
func guardDials(t *http.Transport, upstreamURL *url.URL, dialer *net.Dialer) {
	g := newDialGuard(upstreamURL, dialer)
	t.DialContext = g.DialContext
	t.Proxy = g.Proxy
}

func newDialGuard(upstreamURL *url.URL, dialer *net.Dialer) *dialGuard {
	return &dialGuard{
		own:     originOf(upstreamURL).hostport,
		dialer:  dialer,
		proxies: map[string]bool{},
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
		fromEnv: http.ProxyFromEnvironment,
	}
}

// maxProxies bounds the proxies remembered: the environment names at most two.
const maxProxies = 8

// DialContext is the transport's dial.
func (g *dialGuard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := *g.dialer
	switch {
	case strings.EqualFold(addr, g.own):
		d.Control = func(_, address string, _ syscall.RawConn) error {
			if ap, err := netip.ParseAddrPort(address); err == nil {
				g.ownReach.Store(int32(reachOf(ap.Addr())) + 1)
			}
			return nil
		}
	case g.isProxy(addr):
	default:
		ceiling := g.ceiling(ctx)
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &AddressError{Host: addr, Reason: "not an IP address and port: " + address}
			}
			return g.allow(addr, ap.Addr(), ceiling)
		}
	}
	return d.DialContext(ctx, network, addr)
}

// allow refuses a connection to a (for host) that leads further inside than ceiling.
func (g *dialGuard) allow(host string, a netip.Addr, ceiling reach) error {
	r := reachOf(a)
	switch {
	case r == reachNever:
		return &AddressError{Host: host, Addr: a, Reason: r.String() + ", never connected to for an upstream"}
	case r > ceiling:
		return &AddressError{Host: host, Addr: a, Reason: fmt.Sprintf("%s, and the upstream %s is at %s", r, g.own, ceiling)}
	}
	return nil
}

// ceiling is how far inside a network the upstream itself is: where it was last
// connected, or else where its host resolves (the least internal of its addresses).
// Unknown is public, the strictest.
func (g *dialGuard) ceiling(ctx context.Context) reach {
	if r := g.ownReach.Load(); r > 0 {
		return reach(r - 1)
	}
	host, _, err := net.SplitHostPort(g.own)
	if err != nil {
		return reachPublic
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return min(reachOf(a), reachLoopback)
	}
	addrs, err := g.lookup(ctx, host)
	if err != nil || len(addrs) == 0 {
		return reachPublic
	}
	c := reachLoopback
	for _, a := range addrs {
		c = min(c, reachOf(a))
	}
	return c
}

func (g *dialGuard) isProxy(addr string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.proxies[strings.ToLower(addr)]
}

// Proxy is the transport's proxy choice: the environment's, as before. A request sent
// through a proxy connects to the proxy, so a host the upstream named is checked here by
// resolving it; the proxy resolves it again on its own, which this cannot see.
func (g *dialGuard) Proxy(req *http.Request) (*url.URL, error) {
	p, err := g.fromEnv(req)
	if p == nil || err != nil {
		return p, err
	}
	g.mu.Lock()
	if len(g.proxies) < maxProxies {
		g.proxies[originOf(p).hostport] = true
	}
	g.mu.Unlock()
	to := originOf(req.URL).hostport
	if strings.EqualFold(to, g.own) {
		return p, nil
	}
	host := req.URL.Hostname()
	addrs := []netip.Addr{}
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = append(addrs, a)
	} else if addrs, err = g.lookup(req.Context(), host); err != nil {
		return nil, fmt.Errorf("resolve %s before sending it to the proxy: %w", to, err)
	}
	ceiling := g.ceiling(req.Context())
	for _, a := range addrs {
		if err := g.allow(to, a, ceiling); err != nil {
			return nil, err
		}
	}
	return p, nil
}
