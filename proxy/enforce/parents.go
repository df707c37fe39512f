package enforce

import (
	"net"
	"slices"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/opencontainers/go-digest"
)

// parents is the parent-index memory of DESIGN.md difference 3, kept per client: which
// indexes that pullgate served to a client listed a child, and under which identity each
// was served. A client's by-digest fetch of a child is judged under the identities of that
// client's own remembered parents (and its own digest identity), never another client's:
// one client's requests cannot change how another's are judged. Only served indexes are
// remembered, and only one accepted by its own signatures vouches for its children.
type parents struct {
	mu      sync.Mutex
	clients *simplelru.LRU[string, *simplelru.LRU[Key, []parent]]
	now     func() time.Time
}

// parent is what a child remembers of an index that listed it.
type parent struct {
	index    digest.Digest
	identity reference.Named // the identity the index was requested by
	// accepted is true when the index's own signatures satisfied the policy for identity
	// (not merely served because a child was accepted, difference 2).
	accepted bool
	// scope and requirement are those that accepted the index, for the child's decision.
	scope, requirement string
	expires            time.Time
}

func newParents() (*parents, error) {
	l, err := simplelru.NewLRU[string, *simplelru.LRU[Key, []parent]](maxParentClients, nil)
	if err != nil {
		return nil, err
	}
	return &parents{clients: l, now: time.Now}, nil
}

// clientKey is what a client is known by: its IP address without the port (the remote
// address as the proxy saw it), or the whole string when it is not host:port.
func clientKey(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// remember records that index p, served to client, lists children (in the repository and
// policy of scope, whose digest is ignored).
func (ps *parents) remember(client string, scope Key, children []digest.Digest, p parent, ttl time.Duration) {
	if len(children) > maxParentChildrenPerClient {
		children = children[:maxParentChildrenPerClient] // more would only evict the same index's
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p.expires = ps.now().Add(ttl)
	mem, ok := ps.clients.Get(client)
	if !ok {
		var err error
		if mem, err = simplelru.NewLRU[Key, []parent](maxParentChildrenPerClient, nil); err != nil {
			return // cannot happen: the size is positive
		}
		ps.clients.Add(client, mem)
	}
	for _, c := range children {
		k := Key{scope.Policy, scope.Registry, scope.Repository, c}
		old, _ := mem.Peek(k)
		list := make([]parent, 0, min(len(old)+1, maxParentsPerChild))
		list = append(list, p)
		for _, q := range old {
			if len(list) == maxParentsPerChild {
				break
			}
			if q.index == p.index && q.identity.String() == p.identity.String() {
				continue // replaced by the newer record
			}
			list = append(list, q)
		}
		mem.Add(k, list)
	}
}

// of returns the unexpired parents client was served for child k, newest first.
func (ps *parents) of(client string, k Key) []parent {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	mem, ok := ps.clients.Get(client)
	if !ok {
		return nil
	}
	list, ok := mem.Get(k)
	if !ok {
		return nil
	}
	now := ps.now()
	return slices.DeleteFunc(slices.Clone(list), func(p parent) bool { return !now.Before(p.expires) })
}
