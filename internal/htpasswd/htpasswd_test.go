package htpasswd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func hash(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestParseAndCheck(t *testing.T) {
	alice := hash(t, "wonderland")
	f, err := Parse([]byte("# users\n\nalice:" + alice + "\r\nbob:" + strings.Replace(hash(t, "builder"), "$2a$", "$2y$", 1) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Users() != 2 {
		t.Fatalf("%d users", f.Users())
	}
	for _, c := range []struct {
		user, pw string
		ok       bool
	}{
		{"alice", "wonderland", true}, {"bob", "builder", true}, {"alice", "builder", false},
		{"carol", "wonderland", false}, {"", "", false}, {"alice", "", false},
		{"alice", strings.Repeat("x", 100), false}, {strings.Repeat("u", 300), "x", false},
	} {
		if got := f.Check(c.user, c.pw); got != c.ok {
			t.Errorf("Check(%q, %q) = %v, want %v", c.user, c.pw, got, c.ok)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	good := hash(t, "pw")
	for _, c := range []struct {
		name, content, want string
	}{
		{"md5", "alice:$apr1$abcdefgh$0123456789012345678901\n", "line 1: user \"alice\": the password is an MD5 (apr1) hash; only bcrypt entries are supported (htpasswd -B)"},
		{"sha1", "a:" + good + "\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "line 2: user \"bob\": the password is a SHA-1 hash"},
		{"crypt", "carol:$6$salt$hash\n", "line 1: user \"carol\": the password is a crypt(3) hash"},
		{"plain", "dave:secretpassword\n", "line 1: user \"dave\": the password is not a known hash (plain text?)"},
		{"no colon", "erin\n", "line 1: expected user:hash"},
		{"empty user", ":" + good + "\n", "line 1: empty user name"},
		{"twice", "a:" + good + "\na:" + good + "\n", "line 2: user \"a\" is listed twice"},
		{"broken bcrypt", "a:$2y$05$short\n", "line 1: user \"a\": not a valid bcrypt hash"},
		{"high cost", "a:$2y$31$" + strings.Repeat("a", 53) + "\n", "bcrypt cost 31 is above 17"},
		{"empty", "# nobody\n", "no user entries"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.content))
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			// Never the hash.
			for _, secret := range []string{"$apr1$abcdefgh", "W6ph5Mm5", "secretpassword", "$6$salt", "short"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error shows the hash: %v", err)
				}
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("alice:" + hash(f, "pw") + "\n"))
	f.Add([]byte("a:$apr1$x$y\n# c\n\nb:{SHA}z\n"))
	f.Add([]byte("a:$2y$05$" + strings.Repeat("a", 53)))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if file.Users() == 0 {
			t.Fatal("a file without users parsed")
		}
		if file.Check("", "") {
			t.Fatal("empty credentials accepted")
		}
	})
}

// TestRereadAndSameEntry: Reread returns the previous file itself when the bytes are
// unchanged and a new one when they changed; SameEntry holds only for a user listed with
// the same hash in both.
func TestRereadAndSameEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	alice, bob := "alice:"+hash(t, "pw")+"\n", "bob:"+hash(t, "pw")+"\n"
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(alice + bob)
	first, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := Reread(path, first); err != nil || again != first {
		t.Fatalf("unchanged bytes: %p %v, want the previous file", again, err)
	}
	write("# edited\n" + alice + "bob:" + hash(t, "pw") + "\n")
	second, err := Reread(path, first)
	if err != nil || second == first {
		t.Fatalf("changed bytes: %v, same file %t", err, second == first)
	}
	if !first.SameEntry(second, "alice") || first.SameEntry(second, "bob") || first.SameEntry(second, "carol") {
		t.Fatal("SameEntry: want alice only")
	}
	write(bob)
	third, err := Reread(path, second)
	if err != nil || second.SameEntry(third, "alice") || third.SameEntry(second, "alice") {
		t.Fatalf("removed alice: %v", err)
	}
	write("")
	if f, err := Reread(path, third); err == nil || f != nil {
		t.Fatalf("empty file: %v", err)
	}
}
