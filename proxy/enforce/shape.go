package enforce

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"unicode"

	"github.com/pullgate/pullgate/proxy/content"
)

// A manifest's Content-Type and body must describe one manifest of one type, the same for
// every client, before anything else is done with it. A signature authorises bytes; if
// pullgate read those bytes as one type and a client as another (an OCI type whose body is
// also signed Docker schema1, an index whose body is also an image), a signature checked
// under one reading would authorise what the client runs under the other.

var (
	// errBadShape: the Content-Type and the body do not describe one manifest of a type
	// pullgate serves. It is an errUnknownManifest: the manifest is not served.
	errBadShape = fmt.Errorf("%w", errUnknownManifest)
	// errSchema1: Docker schema1 is refused outright, as distribution v3 and containerd 2
	// do. Its signed payload is rebuilt from unsigned parts of the body (formatLength and
	// formatTail of the JWS protected header), so a signature of one manifest can be made
	// to match other bytes.
	errSchema1 = fmt.Errorf("%w: Docker schema1 manifests are not served: deprecated and unverifiable as signed bytes; "+
		"the publisher must push an OCI or Docker v2 (schema2) manifest", errBadShape)
)

// genericContentTypes say nothing about the manifest: the body's mediaType decides.
var genericContentTypes = map[string]bool{"": true, "application/json": true, "application/octet-stream": true, "text/plain": true}

// topLevelMembers are the top-level members any manifest type (schema1 included) defines.
// They must be spelled exactly so: encoding/json matches member names case-insensitively
// (Unicode folding: "ſignatures" is "signatures" to it) and other parsers do not, so a
// spelling variant would be a member one client sees and another does not.
var topLevelMembers = []string{"schemaVersion", "mediaType", "artifactType", "config", "layers", "manifests", "subject",
	"annotations", "fsLayers", "signatures", "history", "architecture", "name", "tag"}

// notInImage and notInIndex are the members that belong to another kind of manifest: their
// presence (even as null) means the body is also something other than what its type says.
var (
	notInImage = []string{"manifests", "fsLayers", "signatures", "history", "architecture"}
	notInIndex = []string{"config", "layers", "fsLayers", "signatures", "history", "architecture"}
)

// checkShape decides the one media type of a manifest served with contentType, and refuses
// (with an errBadShape whose message is fit for a DENIED reason) every manifest whose type
// is ambiguous, differs between the Content-Type and the body, or is Docker schema1:
//
//   - the body is one JSON object whose top-level member names, and those of its
//     descriptors (config, subject, layers and manifests entries), are all distinct under
//     Unicode case folding, known members spelled exactly;
//   - schema1 is refused: by Content-Type, by the body's mediaType, by schemaVersion 1,
//     or by a fsLayers or signatures member;
//   - a manifest Content-Type is the type, and a body mediaType must equal it; a generic
//     Content-Type (none, application/json, application/octet-stream, text/plain) leaves
//     the type to the body's mediaType, and with none anywhere only an OCI image manifest
//     (config, no manifests) or an OCI index (manifests, no config) is recognised;
//   - the type is an OCI or Docker v2 image manifest or index, schemaVersion is 2, and no
//     member of another kind is present.
func checkShape(contentType string, body []byte) (string, error) {
	ct := ""
	if strings.TrimSpace(contentType) != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		// Parameters play no part in the type (the handler and verify drop them before
		// the gate): a malformed one must not make the Content-Type and body disagree.
		if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
			return "", fmt.Errorf("%w: Content-Type %q is not a media type: %w", errBadShape, contentType, err)
		}
		ct = mt // lower-cased, parameters dropped
	}
	members, err := topLevel(body)
	if err != nil {
		return "", err
	}
	bodyType, err := stringMember(members, "mediaType")
	if err != nil {
		return "", err
	}
	version, hasVersion, err := schemaVersion(members)
	if err != nil {
		return "", err
	}

	if signals := schema1Signals(ct, bodyType, version, hasVersion, members); len(signals) > 0 {
		return "", fmt.Errorf("%w (Content-Type %s; %s)", errSchema1, describe(ct), strings.Join(signals, "; "))
	}

	mt := ct
	switch {
	case !genericContentTypes[ct]:
		if bodyType != "" && bodyType != ct {
			return "", fmt.Errorf("%w: Content-Type %s, but the body's mediaType is %q; a manifest whose Content-Type and body disagree is not served",
				errBadShape, ct, bodyType)
		}
	case bodyType != "":
		mt = bodyType
	default:
		_, hasConfig := members["config"]
		_, hasManifests := members["manifests"]
		switch {
		case hasConfig && !hasManifests:
			mt = content.MediaTypeOCIManifest
		case hasManifests && !hasConfig:
			mt = content.MediaTypeOCIIndex
		default:
			return "", fmt.Errorf("%w: no media type in the Content-Type (%s) or the body, and the body is neither an OCI image manifest (config, no manifests) nor an OCI index (manifests, no config)",
				errBadShape, describe(ct))
		}
	}

	var foreign []string
	switch mt {
	case content.MediaTypeOCIManifest, content.MediaTypeDockerManifest:
		foreign = notInImage
	case content.MediaTypeOCIIndex, content.MediaTypeDockerList:
		foreign = notInIndex
	default:
		return "", fmt.Errorf("%w: media type %q is not a manifest type pullgate serves", errBadShape, mt)
	}
	if !hasVersion {
		return "", fmt.Errorf("%w: %s without schemaVersion (it must be 2)", errBadShape, mt)
	}
	if version != 2 {
		return "", fmt.Errorf("%w: %s with schemaVersion %d (it must be 2)", errBadShape, mt, version)
	}
	var found []string
	for _, name := range foreign {
		if _, ok := members[name]; ok {
			found = append(found, strconv.Quote(name))
		}
	}
	if len(found) > 0 {
		return "", fmt.Errorf("%w: media type %s, but the body has %s (members of another kind of manifest); a manifest whose Content-Type and body disagree is not served",
			errBadShape, mt, strings.Join(found, ", "))
	}
	return mt, nil
}

// schema1Signals lists what makes a manifest Docker schema1 for some client: its
// Content-Type, its body's mediaType, schemaVersion 1 (containers/image guesses schema1 from
// it) or a member only schema1 has and reads (fsLayers, signatures, even as null).
func schema1Signals(ct, bodyType string, version int, hasVersion bool, members map[string]json.RawMessage) []string {
	var signals []string
	if ct == content.MediaTypeSchema1 || ct == content.MediaTypeSchema1Signed {
		signals = append(signals, "a schema1 Content-Type")
	}
	if bodyType == content.MediaTypeSchema1 || bodyType == content.MediaTypeSchema1Signed {
		signals = append(signals, "the body's mediaType is "+bodyType)
	}
	if hasVersion && version == 1 {
		signals = append(signals, "the body has schemaVersion 1")
	}
	for _, name := range []string{"fsLayers", "signatures"} {
		if _, ok := members[name]; ok {
			signals = append(signals, fmt.Sprintf("the body has the schema1 member %q", name))
		}
	}
	return signals
}

// describe names a Content-Type in a message.
func describe(ct string) string {
	if ct == "" {
		return "none"
	}
	return ct
}

// topLevel reads body as exactly one JSON object and returns its top-level members by exact
// name, after checking the member names of the descriptors it holds (config, subject,
// layers and manifests entries) in the same way.
func topLevel(body []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(body) { // also refuses trailing data after the value
		return nil, fmt.Errorf("%w: the body is not one JSON value", errBadShape)
	}
	members, isObject, err := objectMembers(body, knownTopLevel, "the body")
	if err != nil {
		return nil, err
	}
	if !isObject {
		return nil, fmt.Errorf("%w: the body is not a JSON object", errBadShape)
	}
	for _, name := range []string{"config", "subject"} {
		if raw, ok := members[name]; ok {
			if _, _, err := objectMembers(raw, knownDescriptor, name); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range []string{"layers", "manifests"} {
		raw, ok := members[name]
		if !ok {
			continue
		}
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) != nil {
			continue // not an array: parseManifest refuses it where it matters
		}
		for i, d := range list {
			if _, _, err := objectMembers(d, knownDescriptor, fmt.Sprintf("%s[%d]", name, i)); err != nil {
				return nil, err
			}
		}
	}
	return members, nil
}

// Fold keys of the member names that must be spelled exactly: of a manifest's top level,
// and of a descriptor (whose mediaType and digest decide what is admitted and how).
var (
	knownTopLevel   = foldKeys(topLevelMembers)
	knownDescriptor = foldKeys([]string{"mediaType", "digest", "size", "urls", "annotations", "data", "artifactType", "platform"})
)

func foldKeys(names []string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[foldKey(n)] = n
	}
	return m
}

// objectMembers returns the members of raw, one valid JSON value, by exact name, or false
// when it is not an object. Two names equal under Unicode case folding (exact duplicates
// included), or a spelling variant of a known member, are refused: clients that disagree
// on which duplicate counts, or on case, would read different manifests from the same
// bytes. where names the object in messages.
func objectMembers(raw []byte, known map[string]string, where string) (map[string]json.RawMessage, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false, nil
	}
	members := map[string]json.RawMessage{}
	seen := map[string]string{} // fold key → name as spelled
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, true, fmt.Errorf("%w: %s: %w", errBadShape, where, err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, true, fmt.Errorf("%w: %s: member name %v", errBadShape, where, tok)
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, true, fmt.Errorf("%w: %s: member %q: %w", errBadShape, where, name, err)
		}
		key := foldKey(name)
		if prev, dup := seen[key]; dup {
			if prev == name {
				return nil, true, fmt.Errorf("%w: %s has the member %q twice; clients disagree on which one counts", errBadShape, where, name)
			}
			return nil, true, fmt.Errorf("%w: %s has the members %q and %q, one member for clients that ignore case (encoding/json) and two for others",
				errBadShape, where, prev, name)
		}
		if k, isKnown := known[key]; isKnown && k != name {
			return nil, true, fmt.Errorf("%w: %s has the member %q; it must be spelled %q (clients that ignore case and clients that do not would read different manifests)",
				errBadShape, where, name, k)
		}
		seen[key] = name
		members[name] = value
	}
	return members, true, nil
}

// foldKey maps a name to one representative of its Unicode simple-folding orbit per rune,
// so that foldKey(a) == foldKey(b) exactly when bytes.EqualFold(a, b), the rule by which
// encoding/json matches member names to fields.
func foldKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		low := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			low = min(low, f)
		}
		b.WriteRune(low)
	}
	return b.String()
}

// stringMember is a string member's value: "" when absent or null (as encoding/json reads
// it); any other JSON type is refused.
func stringMember(members map[string]json.RawMessage, name string) (string, error) {
	raw, ok := members[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%w: %s is not a string", errBadShape, name)
	}
	return s, nil
}

// schemaVersion is the body's schemaVersion, when present (null counts as absent, as for
// encoding/json); anything but an integer is refused.
func schemaVersion(members map[string]json.RawMessage) (int, bool, error) {
	raw, ok := members["schemaVersion"]
	if !ok || string(raw) == "null" {
		return 0, false, nil
	}
	var v int
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, false, fmt.Errorf("%w: schemaVersion %s is not an integer", errBadShape, raw)
	}
	return v, true, nil
}
