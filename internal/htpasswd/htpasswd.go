// Package htpasswd reads Apache htpasswd files with bcrypt entries (htpasswd -B) and
// checks credentials against them. Every other hash kind (MD5 $apr1$, SHA1 {SHA}, crypt,
// plain text) is refused when the file is read: they are fast to brute-force, and a file
// that mixes kinds would silently weaken some accounts. Errors name the line and the user,
// never the hash.
package htpasswd

import (
	"github.com/pullgate/pullgate/internal/readfile"

	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Bounds on what a file may hold; a real one is a few lines of 60-byte hashes.
const (
	// MaxFileSize bounds the file read.
	MaxFileSize = 1 << 20
	// MaxUsers bounds the entries.
	MaxUsers = 10000
	// MaxUserLength bounds a user name (in the file and in a request).
	MaxUserLength = 255
	// MaxPasswordLength is bcrypt's own limit: it ignores bytes beyond 72, so a longer
	// password is refused rather than compared on its prefix.
	MaxPasswordLength = 72
	// maxCost bounds an entry's bcrypt cost: each step doubles the work of every failed
	// login, and cost 31 takes days. htpasswd -B defaults to 5, -C allows up to 17.
	maxCost = 17
)

// ErrInvalid is wrapped by every error about the file's content.
var ErrInvalid = errors.New("invalid htpasswd file")

// File is a parsed htpasswd file.
type File struct {
	users map[string][]byte
	// dummy is compared against for unknown users, at the highest cost in the file, so
	// that an unknown name takes as long as a wrong password.
	dummy []byte
	// sum is the SHA-256 of the bytes parsed, for Reread.
	sum [sha256.Size]byte
}

// ReadFile reads and parses the file at path.
func ReadFile(path string) (*File, error) { return Reread(path, nil) }

// Reread reads the file at path again. When its bytes are those prev was parsed from, it
// returns prev itself without parsing them (a parse makes a bcrypt hash at the file's
// highest cost); otherwise, like ReadFile, the newly parsed file. prev may be nil.
func Reread(path string, prev *File) (*File, error) {
	data, err := readfile.Bounded(path, MaxFileSize)
	if readfile.Refused(err) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err != nil {
		return nil, err
	}
	if prev != nil && sha256.Sum256(data) == prev.sum {
		return prev, nil
	}
	file, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return file, nil
}

// Parse parses htpasswd content: one user:hash per line; blank lines and lines starting
// with # are ignored. A file without users is refused: it would lock every client out,
// which is never what an operator meant.
func Parse(data []byte) (*File, error) {
	f := &File{users: map[string][]byte{}, sum: sha256.Sum256(data)}
	highest := bcrypt.MinCost
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxFileSize)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(strings.TrimSpace(text), "#") {
			continue
		}
		user, hash, ok := strings.Cut(text, ":")
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: line %d: expected user:hash", ErrInvalid, line)
		case user == "":
			return nil, fmt.Errorf("%w: line %d: empty user name", ErrInvalid, line)
		case len(user) > MaxUserLength:
			return nil, fmt.Errorf("%w: line %d: user name longer than %d bytes", ErrInvalid, line, MaxUserLength)
		case strings.ContainsFunc(user, func(r rune) bool { return r < 0x20 || r == 0x7f }):
			return nil, fmt.Errorf("%w: line %d: the user name contains control characters", ErrInvalid, line)
		}
		shown := fmt.Sprintf("%q", user)
		if kind := hashKind(hash); kind != "bcrypt" {
			return nil, fmt.Errorf("%w: line %d: user %s: the password is %s; only bcrypt entries are supported (htpasswd -B)", ErrInvalid, line, shown, kind)
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: user %s: not a valid bcrypt hash", ErrInvalid, line, shown)
		}
		if cost > maxCost {
			return nil, fmt.Errorf("%w: line %d: user %s: bcrypt cost %d is above %d", ErrInvalid, line, shown, cost, maxCost)
		}
		if _, dup := f.users[user]; dup {
			return nil, fmt.Errorf("%w: line %d: user %s is listed twice", ErrInvalid, line, shown)
		}
		if len(f.users) == MaxUsers {
			return nil, fmt.Errorf("%w: more than %d users", ErrInvalid, MaxUsers)
		}
		f.users[user] = []byte(hash)
		highest = max(highest, cost)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrInvalid, line+1, err)
	}
	if len(f.users) == 0 {
		return nil, fmt.Errorf("%w: no user entries", ErrInvalid)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("pullgate unknown user"), highest)
	if err != nil {
		return nil, err
	}
	f.dummy = dummy
	return f, nil
}

// hashKind names the kind of an htpasswd hash, for messages that must not show it.
func hashKind(hash string) string {
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		return "bcrypt"
	case strings.HasPrefix(hash, "$apr1$"):
		return "an MD5 (apr1) hash"
	case strings.HasPrefix(hash, "{SHA}"):
		return "a SHA-1 hash"
	case strings.HasPrefix(hash, "$5$"), strings.HasPrefix(hash, "$6$"), strings.HasPrefix(hash, "$1$"):
		return "a crypt(3) hash"
	case hash == "":
		return "empty"
	case len(hash) == 13:
		return "a DES crypt hash or plain text"
	}
	return "not a known hash (plain text?)"
}

// Users is the number of entries.
func (f *File) Users() int { return len(f.users) }

// SameEntry reports whether user is listed in both f and g with the same hash: a
// password that passed against one passes against the other.
func (f *File) SameEntry(g *File, user string) bool {
	a, inF := f.users[user]
	b, inG := g.users[user]
	return inF && inG && bytes.Equal(a, b)
}

// Check reports whether password is user's. It takes a bcrypt comparison whether or not
// user exists, so that response times do not reveal user names.
func (f *File) Check(user, password string) bool {
	if len(user) > MaxUserLength || len(password) > MaxPasswordLength {
		// Still spend the comparison: the length of a guess should not be a timing oracle.
		_ = bcrypt.CompareHashAndPassword(f.dummy, []byte(password[:min(len(password), MaxPasswordLength)]))
		return false
	}
	hash, known := f.users[user]
	if !known {
		_ = bcrypt.CompareHashAndPassword(f.dummy, []byte(password))
		return false
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	// known is true here; the constant-time select keeps the branch structure flat.
	return subtle.ConstantTimeEq(boolInt(ok), 1) == 1
}

func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}
