package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// maxLinks bounds the links read from one Link header (a paginated answer has one).
const maxLinks = 16

// rewriteLink rewrites an upstream's pagination Link header (RFC 8288) so that every
// target is pullgate's own path for the repository (ownPath, in the routing form the
// client used) with the upstream target's query (n, last, or a continuation token).
// The ns parameter is replaced by the client's own (clientNS), or dropped when the
// client sent none. Link parameters (rel="next") are kept as written. The upstream's
// host and path are never passed on.
func rewriteLink(header, ownPath, clientNS string) (string, error) {
	links, err := parseLinks(header)
	if err != nil {
		return "", err
	}
	out := make([]string, 0, len(links))
	for _, l := range links {
		u, err := url.Parse(l.target)
		if err != nil {
			return "", fmt.Errorf("link target %q: %w", l.target, err)
		}
		q := u.Query()
		q.Del("ns")
		if clientNS != "" {
			q.Set("ns", clientNS)
		}
		target := ownPath
		if enc := q.Encode(); enc != "" {
			target += "?" + enc
		}
		out = append(out, "<"+target+">"+l.params)
	}
	return strings.Join(out, ", "), nil
}

type link struct {
	target string
	// params is everything after the closing '>' up to the next link, as written
	// (`; rel="next"`).
	params string
}

// parseLinks splits a Link header into its links. Commas inside quoted parameter values
// do not split.
func parseLinks(header string) ([]link, error) {
	var links []link
	s := strings.TrimSpace(header)
	for s != "" {
		if len(links) == maxLinks {
			return nil, errors.New("too many links")
		}
		if s[0] != '<' {
			return nil, fmt.Errorf("link %q does not start with '<'", s)
		}
		end := strings.IndexByte(s, '>')
		if end < 0 {
			return nil, fmt.Errorf("link %q has no closing '>'", s)
		}
		l := link{target: s[1:end]}
		s = s[end+1:]
		quoted, i := false, 0
		for ; i < len(s); i++ {
			if s[i] == '"' {
				quoted = !quoted
			}
			if s[i] == ',' && !quoted {
				break
			}
		}
		if quoted {
			return nil, errors.New("unterminated quoted string in Link header")
		}
		l.params = strings.TrimRight(s[:i], " \t")
		links = append(links, l)
		if i < len(s) {
			i++ // the comma
		}
		s = strings.TrimSpace(s[i:])
	}
	if len(links) == 0 {
		return nil, errors.New("empty Link header")
	}
	return links, nil
}
