package upstream

import (
	"net/url"
)

// RedactedURL names u in errors and logs: scheme://host/path, without the user name,
// password, query or fragment. A presigned object-store URL's query is a credential
// (X-Amz-Credential, X-Amz-Signature), and a URL may carry a token in any of the
// others. The lookaside signature store's URLs are named by the same rule.
func RedactedURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}

// redactURLError returns err, when it is the *url.Error of http.Client.Do (which names
// the last URL of a redirect chain, password masked but user name and query kept), as
// a copy whose URL is RedactedURL's; any other error as it is. A URL that does not parse
// is dropped: nothing of it is known to be safe.
func redactURLError(err error) error {
	ue, ok := err.(*url.Error)
	if !ok {
		return err
	}
	shown := ""
	if u, perr := url.Parse(ue.URL); perr == nil {
		shown = RedactedURL(u)
	}
	return &url.Error{Op: ue.Op, URL: shown, Err: ue.Err}
}
