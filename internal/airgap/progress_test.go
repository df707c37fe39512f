package airgap

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgress(t *testing.T) {
	for _, tt := range []struct {
		name     string
		terminal bool
		want     []string
	}{
		{"plain lines", false, []string{"progress: 1/2 images, 1.5 MiB read\n", "progress: 2/2 images, 1.5 MiB read\n"}},
		{"bar", true, []string{"\r[###############...............] 1/2 images, 1.5 MiB", "\r[##############################] 2/2 images, 1.5 MiB"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p := &Progress{Out: &out, Terminal: tt.terminal}
			p.Start(2)
			p.addBytes(3 << 19)
			p.ImageDone()
			p.ImageDone()
			p.Finish()
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output %q lacks %q", out.String(), w)
				}
			}
			if !tt.terminal && strings.Contains(out.String(), "\r") {
				t.Errorf("a carriage return in plain output: %q", out.String())
			}
		})
	}
}
