package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy"
)

// authClient sends requests through a's check from one client address.
func authClient(a *basicAuth) func(remote, user, pw string) int {
	srv := a.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		observerFunc(func(context.Context, proxy.Route, proxy.AccessRecord) {}))
	return func(remote, user, pw string) int {
		req := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		req.RemoteAddr = remote
		req.SetBasicAuth(user, pw)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec.Code
	}
}

func bcryptLine(t *testing.T, user, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return user + ":" + string(h) + "\n"
}

// TestReloadFilesKeepsRememberedLogins: a user whose credentials passed keeps passing
// after ReloadFiles, though the address they share has no failed login left, both when
// the htpasswd file is unchanged (SIGHUP, or a policy or key file edited) and when other
// lines of it changed. No bcrypt comparison runs for them.
func TestReloadFilesKeepsRememberedLogins(t *testing.T) {
	a, compares := countingAuth(t, 3)
	now := time.Unix(1000, 0)
	a.failures.now = func() time.Time { return now }
	s := &Server{ops: &operations{auth: a}}
	do := authClient(a)
	const nat = "192.0.2.7:40000" // alice and the attacker, behind one address
	if code := do(nat, "alice", "pw"); code != http.StatusOK {
		t.Fatalf("alice's login: %d", code)
	}
	for i := range 3 {
		if code := do("192.0.2.7:40001", "alice", "guess"); code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i+1, code)
		}
	}
	if code := do(nat, "alice", "pw"); code != http.StatusOK {
		t.Fatalf("remembered alice before the reload: %d", code)
	}
	before := compares.Load()
	if err := s.ReloadFiles(); err != nil {
		t.Fatal(err)
	}
	if code := do(nat, "alice", "pw"); code != http.StatusOK {
		t.Fatalf("remembered alice after a reload with htpasswd unchanged: %d, want 200", code)
	}
	data, err := os.ReadFile(a.path)
	if err != nil {
		t.Fatal(err)
	}
	testsupport.WriteFile(t, a.path, "# pullgate users\n"+string(data)+bcryptLine(t, "bob", "bobpw"))
	if err := s.ReloadFiles(); err != nil {
		t.Fatal(err)
	}
	if code := do(nat, "alice", "pw"); code != http.StatusOK {
		t.Fatalf("remembered alice after a reload that added bob: %d, want 200", code)
	}
	if n := compares.Load() - before; n != 0 {
		t.Fatalf("%d bcrypt comparisons for remembered alice", n)
	}
	if code := do(nat, "bob", "bobpw"); code != http.StatusTooManyRequests {
		t.Fatalf("bob, never checked, from the limited address: %d, want 429", code)
	}
}

// TestReloadFilesForgetsChangedUsers: a user whose line changed or was removed is
// forgotten by the reload that reads the change, while the others stay remembered.
func TestReloadFilesForgetsChangedUsers(t *testing.T) {
	a, compares := countingAuth(t, 0)
	s := &Server{ops: &operations{auth: a}}
	do := authClient(a)
	const client = "198.51.100.1:40000"
	carol := bcryptLine(t, "carol", "carolpw")
	testsupport.WriteFile(t, a.path, bcryptLine(t, "alice", "pw")+bcryptLine(t, "bob", "bobpw")+carol)
	if err := s.ReloadFiles(); err != nil {
		t.Fatal(err)
	}
	for _, u := range [][2]string{{"alice", "pw"}, {"bob", "bobpw"}, {"carol", "carolpw"}} {
		if code := do(client, u[0], u[1]); code != http.StatusOK {
			t.Fatalf("%s: %d", u[0], code)
		}
	}
	// alice's password changes, bob is removed, carol's line stays.
	testsupport.WriteFile(t, a.path, bcryptLine(t, "alice", "newpw")+carol)
	if err := s.ReloadFiles(); err != nil {
		t.Fatal(err)
	}
	before := compares.Load()
	if code := do(client, "carol", "carolpw"); code != http.StatusOK || compares.Load() != before {
		t.Fatalf("carol, unchanged: %d after %d comparisons, want 200 after none", code, compares.Load()-before)
	}
	if code := do(client, "alice", "pw"); code != http.StatusUnauthorized {
		t.Fatalf("alice's old password after her line changed: %d, want 401", code)
	}
	if code := do(client, "bob", "bobpw"); code != http.StatusUnauthorized {
		t.Fatalf("bob after his line was removed: %d, want 401", code)
	}
	if code := do(client, "alice", "newpw"); code != http.StatusOK {
		t.Fatalf("alice's new password: %d", code)
	}
	if n := compares.Load() - before; n != 3 {
		t.Fatalf("%d comparisons, want 3 (alice twice, bob)", n)
	}
}
