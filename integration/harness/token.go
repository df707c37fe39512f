package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// tokenPath is where the token server answers, on the registry's own host.
const tokenPath = "/token"

// tokenLifetime is the expires_in of issued tokens.
const tokenLifetime = 5 * time.Minute

// tokenServer implements the docker token protocol (distribution's docs/spec/auth/token):
// GET /token?service=..&scope=repository:<name>:<actions> with basic credentials answers
// a JWT signed by an ECDSA key whose certificate the registry trusts.
type tokenServer struct {
	user, password  string
	service, issuer string
	key             *ecdsa.PrivateKey
	signer          jose.Signer
	certPEM         []byte

	mu      sync.Mutex
	issued  map[string]int
	refused int
}

func newTokenServer(user, password, host string) (*tokenServer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pullgate harness token issuer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	// The registry trusts the key through the certificate bundle, under the key's JWK
	// thumbprint as key ID.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), token.GetJWKThumbprint(&key.PublicKey)))
	if err != nil {
		return nil, err
	}
	return &tokenServer{
		user: user, password: password,
		service: "registry@" + host, issuer: "pullgate-harness-issuer",
		key: key, signer: signer,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		issued:  map[string]int{},
	}, nil
}

// accessClaim is one entry of the token's "access" claim.
type accessClaim struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.user)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.password)) != 1 {
		s.mu.Lock()
		s.refused++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`)
		return
	}
	if r.URL.Query().Get("service") != s.service {
		http.Error(w, "unknown service", http.StatusBadRequest)
		return
	}
	var access []accessClaim
	scopes := r.URL.Query()["scope"]
	for _, scope := range scopes {
		// repository:<name>:<actions>; the name may itself contain ':' (a port).
		typ, rest, ok1 := strings.Cut(scope, ":")
		i := strings.LastIndex(rest, ":")
		if !ok1 || i < 0 {
			http.Error(w, "malformed scope", http.StatusBadRequest)
			return
		}
		access = append(access, accessClaim{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")})
	}
	now := time.Now()
	claims := struct {
		jwt.Claims
		Access []accessClaim `json:"access"`
	}{
		Claims: jwt.Claims{
			Issuer:    s.issuer,
			Subject:   user,
			Audience:  jwt.Audience{s.service},
			Expiry:    jwt.NewNumericDate(now.Add(tokenLifetime)),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        fmt.Sprintf("%d", now.UnixNano()),
		},
		Access: access,
	}
	raw, err := jwt.Signed(s.signer).Claims(claims).Serialize()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	for _, scope := range scopes {
		s.issued[scope]++
	}
	if len(scopes) == 0 {
		s.issued[""]++
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token":      raw,
		"expires_in": int(tokenLifetime.Seconds()),
		"issued_at":  now.UTC().Format(time.RFC3339),
	})
}

func (s *tokenServer) counts() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	issued := make(map[string]int, len(s.issued))
	for k, v := range s.issued {
		issued[k] = v
	}
	return issued, s.refused
}

func (s *tokenServer) reset() {
	s.mu.Lock()
	s.issued = map[string]int{}
	s.refused = 0
	s.mu.Unlock()
}
