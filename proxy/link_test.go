package proxy

import "testing"

func TestRewriteLink(t *testing.T) {
	tests := []struct {
		name, header, ownPath, clientNS string
		want                            string
		wantErr                         bool
	}{
		{
			name:    "distribution relative link",
			header:  `</v2/library/alpine/tags/list?last=3.19&n=2>; rel="next"`,
			ownPath: "/v2/alpine/tags/list",
			want:    `</v2/alpine/tags/list?last=3.19&n=2>; rel="next"`,
		},
		{
			name:    "absolute link to the upstream host",
			header:  `<https://registry-1.docker.io/v2/library/alpine/tags/list?n=100&last=edge>; rel="next"`,
			ownPath: "/v2/docker.io/alpine/tags/list",
			want:    `</v2/docker.io/alpine/tags/list?last=edge&n=100>; rel="next"`,
		},
		{
			name:     "client ns kept",
			header:   `</v2/team/app/tags/list?n=1&last=a>; rel="next"`,
			ownPath:  "/v2/team/app/tags/list",
			clientNS: "quay.io",
			want:     `</v2/team/app/tags/list?last=a&n=1&ns=quay.io>; rel="next"`,
		},
		{
			name:    "upstream ns dropped",
			header:  `</v2/team/app/tags/list?n=1&last=a&ns=elsewhere>; rel="next"`,
			ownPath: "/v2/team/app/tags/list",
			want:    `</v2/team/app/tags/list?last=a&n=1>; rel="next"`,
		},
		{
			name:    "path of another repository ignored",
			header:  `</v2/other/repo/tags/list?n=1&last=a>; rel="next"`,
			ownPath: "/v2/team/app/tags/list",
			want:    `</v2/team/app/tags/list?last=a&n=1>; rel="next"`,
		},
		{
			name:    "two links, comma in quoted parameter",
			header:  `</v2/a/tags/list?last=b>; rel="next"; title="x, y", </v2/a/tags/list?n=5>; rel="prev"`,
			ownPath: "/v2/a/tags/list",
			want:    `</v2/a/tags/list?last=b>; rel="next"; title="x, y", </v2/a/tags/list?n=5>; rel="prev"`,
		},
		{
			name:    "referrers continuation token",
			header:  `</v2/a/referrers/` + testDigest + `?next_token=abc>; rel="next"`,
			ownPath: "/v2/quay.io/a/referrers/" + testDigest,
			want:    `</v2/quay.io/a/referrers/` + testDigest + `?next_token=abc>; rel="next"`,
		},
		{name: "no angle bracket", header: `/v2/a/tags/list?n=1; rel="next"`, ownPath: "/v2/a/tags/list", wantErr: true},
		{name: "unclosed", header: `</v2/a/tags/list?n=1; rel="next"`, ownPath: "/v2/a/tags/list", wantErr: true},
		{name: "unterminated quote", header: `</v2/a/tags/list?n=1>; rel="next`, ownPath: "/v2/a/tags/list", wantErr: true},
		{name: "bad target", header: "<http://[::1/x>; rel=\"next\"", ownPath: "/v2/a/tags/list", wantErr: true},
		{name: "blank", header: "  ", ownPath: "/v2/a/tags/list", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rewriteLink(tt.header, tt.ownPath, tt.clientNS)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("rewriteLink(%q) = %q, want an error", tt.header, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("rewriteLink(%q): %v", tt.header, err)
			}
			if got != tt.want {
				t.Fatalf("rewriteLink(%q)\n got %s\nwant %s", tt.header, got, tt.want)
			}
		})
	}
}

func FuzzRewriteLink(f *testing.F) {
	f.Add(`</v2/library/alpine/tags/list?last=3.19&n=2>; rel="next"`, "quay.io")
	f.Add(`<https://h/v2/a/tags/list?n=1>; rel="next", <x>; title="a,b"`, "")
	f.Add(`<`, "")
	f.Fuzz(func(t *testing.T, header, ns string) {
		out, err := rewriteLink(header, "/v2/own/tags/list", ns)
		if err != nil {
			return
		}
		links, err := parseLinks(out)
		if err != nil {
			t.Fatalf("rewriteLink(%q) = %q, which does not parse: %v", header, out, err)
		}
		for _, l := range links {
			if l.target != "/v2/own/tags/list" && !hasPrefix(l.target, "/v2/own/tags/list?") {
				t.Fatalf("rewriteLink(%q) points at %q", header, l.target)
			}
		}
	})
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }
