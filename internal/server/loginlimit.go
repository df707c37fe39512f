package server

import (
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// trackedClients bounds the client addresses whose failed logins are counted. An
// attacker spreading guesses over more addresses than this gets each evicted one a fresh
// allowance, which the bound on concurrent comparisons (authSlots) still caps.
const trackedClients = 10000

// loginLimiter bounds, per client address, the credential checks that fail: an address
// holds perMinute tokens, refilled at perMinute a minute. A check takes a token before
// bcrypt runs and gives it back when the credentials were right, so concurrent guesses
// cannot overdraw it. An address without a token is refused without a comparison: a
// wrong guess costs the attacker a request and pullgate nothing.
type loginLimiter struct {
	perMinute float64
	now       func() time.Time
	mu        sync.Mutex
	buckets   *lru.Cache[string, *loginBucket]
}

type loginBucket struct {
	tokens float64
	at     time.Time
	// refused records that a refusal was logged since the bucket last had a token, so
	// that a flood makes one log line per address and window, not one per request.
	refused bool
}

// newLoginLimiter returns a limiter of perMinute failures per address, or nil (no
// limit) when perMinute is 0.
func newLoginLimiter(perMinute int, now func() time.Time) *loginLimiter {
	if perMinute <= 0 {
		return nil
	}
	buckets, _ := lru.New[string, *loginBucket](trackedClients) // size is positive
	return &loginLimiter{perMinute: float64(perMinute), now: now, buckets: buckets}
}

// take reserves a failure for client. Without a token left it returns how long until
// one is (rounded up to whole seconds, for Retry-After) and whether this refusal is the
// first since the address last had one.
func (l *loginLimiter) take(client string) (retryAfter time.Duration, first bool) {
	if l == nil {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(client)
	if b.tokens >= 1 {
		b.tokens--
		b.refused = false
		return 0, false
	}
	wait := time.Duration((1 - b.tokens) / l.perMinute * float64(time.Minute))
	first = !b.refused
	b.refused = true
	return time.Duration(math.Ceil(wait.Seconds())) * time.Second, first
}

// refund gives back the token take reserved: the credentials were right, or no
// comparison ran.
func (l *loginLimiter) refund(client string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refill(client)
	b.tokens = min(l.perMinute, b.tokens+1)
}

// refill returns client's bucket with the tokens earned since it was last seen.
func (l *loginLimiter) refill(client string) *loginBucket {
	now := l.now()
	b, ok := l.buckets.Get(client)
	if !ok {
		b = &loginBucket{tokens: l.perMinute, at: now}
		l.buckets.Add(client, b)
		return b
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(l.perMinute, b.tokens+elapsed.Minutes()*l.perMinute)
		b.at = now
	}
	return b
}

// clientKey is the address failures are counted by: the IP of remoteAddr, and for IPv6
// its /64, which one host commonly holds whole (counting single IPv6 addresses would give
// it 2^64 allowances). Headers such as X-Forwarded-For are not read: the client writes
// them.
func clientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64) // an IPv6 address always has a /64
	return p.String()
}
