package upstream

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
)

func TestReachOf(t *testing.T) {
	tests := []struct {
		addr string
		want reach
	}{
		{"8.8.8.8", reachPublic},
		{"2001:4860:4860::8888", reachPublic},
		{"100.63.255.255", reachPublic},
		{"10.1.2.3", reachPrivate},
		{"172.16.0.1", reachPrivate},
		{"172.31.255.255", reachPrivate},
		{"172.32.0.1", reachPublic},
		{"192.168.1.1", reachPrivate},
		{"100.64.0.1", reachPrivate},
		{"fd12:3456::1", reachPrivate},
		{"fec0::1", reachPrivate},
		{"::ffff:10.0.0.1", reachPrivate},
		{"64:ff9b::a00:1", reachPrivate}, // NAT64 of 10.0.0.1
		{"127.0.0.1", reachLoopback},
		{"127.8.9.10", reachLoopback},
		{"::1", reachLoopback},
		{"::ffff:127.0.0.1", reachLoopback},
		{"0.0.0.0", reachNever},
		{"0.1.2.3", reachNever},
		{"::", reachNever},
		{"::ffff:0.0.0.0", reachNever},
		{"169.254.169.254", reachNever},
		{"::ffff:169.254.169.254", reachNever},
		{"64:ff9b::a9fe:a9fe", reachNever}, // NAT64 of 169.254.169.254
		{"fd00:ec2::254", reachNever},
		{"fe80::1", reachNever},
		{"224.0.0.1", reachNever},
		{"ff02::1", reachNever},
		{"255.255.255.255", reachNever},
		{"240.0.0.1", reachNever},
	}
	for _, tt := range tests {
		if got := reachOf(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("reachOf(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

// TestDialGuard dials a server on loopback as a host an upstream named, with the
// upstream itself at each reach.
func TestDialGuard(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	tests := []struct {
		name     string
		upstream reach // where the upstream was last reached
		host     string
		refused  bool
	}{
		{"public upstream, loopback IP", reachPublic, "127.0.0.1", true},
		{"public upstream, name of loopback", reachPublic, "localhost", true},
		{"private upstream, loopback IP", reachPrivate, "127.0.0.1", true},
		{"loopback upstream, loopback IP", reachLoopback, "127.0.0.1", false},
		{"loopback upstream, name of loopback", reachLoopback, "localhost", false},
		{"loopback upstream, unspecified", reachLoopback, "0.0.0.0", true},
		{"loopback upstream, mapped unspecified", reachLoopback, "[::ffff:0.0.0.0]", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newDialGuard(&url.URL{Scheme: "https", Host: "registry.test"}, &net.Dialer{})
			g.ownReach.Store(int32(tt.upstream) + 1)
			conn, err := g.DialContext(context.Background(), "tcp", tt.host+":"+port)
			if conn != nil {
				conn.Close()
			}
			var ae *AddressError
			switch {
			case tt.refused && !errors.As(err, &ae):
				t.Fatalf("dial %s: %v, want an *AddressError", tt.host, err)
			case tt.refused && !errors.Is(err, ErrAddressRefused):
				t.Fatalf("dial %s: %v does not wrap ErrAddressRefused", tt.host, err)
			case !tt.refused && err != nil:
				t.Fatalf("dial %s: %v", tt.host, err)
			}
		})
	}
}

// TestDialGuardOwnHost: the upstream's own host is dialled wherever it is, and where it
// was reached becomes the ceiling for the hosts it names.
func TestDialGuardOwnHost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	g := newDialGuard(u, &net.Dialer{})
	g.ownReach.Store(int32(reachPublic) + 1) // as if reached at a public address before
	conn, err := g.DialContext(context.Background(), "tcp", u.Host)
	if err != nil {
		t.Fatalf("dial the upstream itself: %v", err)
	}
	conn.Close()
	if got := reach(g.ownReach.Load() - 1); got != reachLoopback {
		t.Fatalf("the upstream was reached at %v, want loopback", got)
	}
}

// TestDialGuardCeilingUnknown: before the upstream was ever reached, its host is resolved;
// a name that does not resolve is taken as public, the strictest.
func TestDialGuardCeilingUnknown(t *testing.T) {
	tests := []struct {
		name  string
		host  string
		addrs []string
		want  reach
	}{
		{"IP literal", "10.0.0.5:5000", nil, reachPrivate},
		{"name on a private network", "registry.corp:443", []string{"10.0.0.5"}, reachPrivate},
		{"name with a public and a private address", "registry.corp:443", []string{"10.0.0.5", "8.8.8.8"}, reachPublic},
		{"name that does not resolve", "registry.corp:443", nil, reachPublic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newDialGuard(&url.URL{Scheme: "https", Host: tt.host}, &net.Dialer{})
			g.lookup = func(context.Context, string) ([]netip.Addr, error) {
				if tt.addrs == nil {
					return nil, errors.New("no such host")
				}
				var out []netip.Addr
				for _, a := range tt.addrs {
					out = append(out, netip.MustParseAddr(a))
				}
				return out, nil
			}
			if got := g.ceiling(context.Background()); got != tt.want {
				t.Fatalf("ceiling = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDialGuardProxy: through an HTTP proxy the connection goes to the proxy, so a host
// the upstream named is resolved and checked before the request is handed over.
func TestDialGuardProxy(t *testing.T) {
	proxyURL := &url.URL{Scheme: "http", Host: "proxy.corp:3128"}
	g := newDialGuard(&url.URL{Scheme: "https", Host: "registry.test"}, &net.Dialer{})
	g.ownReach.Store(int32(reachPublic) + 1)
	g.fromEnv = func(*http.Request) (*url.URL, error) { return proxyURL, nil }
	g.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "storage.test" {
			return []netip.Addr{netip.MustParseAddr("203.0.113.7")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
	}
	for _, tt := range []struct {
		url     string
		refused bool
	}{
		{"https://registry.test/v2/", false},
		{"https://storage.test/blob", false},
		{"http://metadata.test/latest/meta-data/", true},
		{"http://169.254.169.254/latest/meta-data/", true},
	} {
		req, _ := http.NewRequest(http.MethodGet, tt.url, nil)
		p, err := g.Proxy(req)
		if tt.refused != errors.Is(err, ErrAddressRefused) || (!tt.refused && p != proxyURL) {
			t.Errorf("Proxy(%s) = %v, %v; refused want %v", tt.url, p, err, tt.refused)
		}
	}
	if !g.isProxy("proxy.corp:3128") {
		t.Fatal("the proxy is not remembered, so its own connection would be checked")
	}
}
