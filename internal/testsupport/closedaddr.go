package testsupport

import (
	"net"
	"testing"
)

// ClosedAddr returns a 127.0.0.1 address where nothing listens at the moment:
// connections are refused until something binds it.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
