package enforce

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy/content"
)

// Fragments of the manifests in the shape tests.
var (
	shapeConfig = `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromString("config").String() + `","size":2}`
	shapeLayers = `[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + digest.FromString("layer").String() + `","size":3}]`
	shapeList   = `[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + digest.FromString("child").String() + `","size":4}]`
	// shapeSignatures is a libtrust signature section whose protected header rebuilds other
	// bytes ({"formatLength":1,"formatTail":...}), as in the schema1 disguise attack.
	shapeSignatures = `[{"header":{"alg":"ES256"},"signature":"c2ln","protected":"eyJmb3JtYXRMZW5ndGgiOjEsImZvcm1hdFRhaWwiOiJJbjAifQ"}]`
)

// shapeImage is an image manifest body with the given extra members (already JSON, each
// starting with a comma) and mediaType (none when empty).
func shapeImage(mediaType, extra string) string {
	mt := ""
	if mediaType != "" {
		mt = `"mediaType":"` + mediaType + `",`
	}
	return `{"schemaVersion":2,` + mt + `"config":` + shapeConfig + `,"layers":` + shapeLayers + extra + `}`
}

func shapeIndex(mediaType, extra string) string {
	mt := ""
	if mediaType != "" {
		mt = `"mediaType":"` + mediaType + `",`
	}
	return `{"schemaVersion":2,` + mt + `"manifests":` + shapeList + extra + `}`
}

type shapeCase struct {
	name, contentType, body string
	// want is the media type decided; empty: refused, with why in the message.
	want    string
	schema1 bool
	why     string
}

var shapeCases = []shapeCase{
	// Every form pullgate serves.
	{name: "oci manifest", contentType: content.MediaTypeOCIManifest, body: shapeImage(content.MediaTypeOCIManifest, ""), want: content.MediaTypeOCIManifest},
	{name: "oci manifest without mediaType", contentType: content.MediaTypeOCIManifest, body: shapeImage("", ""), want: content.MediaTypeOCIManifest},
	{name: "content type with parameters", contentType: content.MediaTypeOCIManifest + "; charset=utf-8", body: shapeImage(content.MediaTypeOCIManifest, ""), want: content.MediaTypeOCIManifest},
	{name: "malformed parameter is ignored (the proxy drops parameters)", contentType: content.MediaTypeOCIManifest + "; =", body: shapeImage(content.MediaTypeOCIManifest, ""), want: content.MediaTypeOCIManifest},
	{name: "content type in capitals", contentType: "Application/VND.OCI.Image.Manifest.v1+JSON", body: shapeImage(content.MediaTypeOCIManifest, ""), want: content.MediaTypeOCIManifest},
	{name: "oci artifact with artifactType and subject", contentType: content.MediaTypeOCIManifest, body: shapeImage(content.MediaTypeOCIManifest,
		`,"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","subject":{"mediaType":"`+content.MediaTypeOCIManifest+`","digest":"`+digest.FromString("s").String()+`","size":5},"annotations":{"a":"b"}`), want: content.MediaTypeOCIManifest},
	{name: "unknown extension member", contentType: content.MediaTypeOCIManifest, body: shapeImage(content.MediaTypeOCIManifest, `,"x-vendor":{"k":1}`), want: content.MediaTypeOCIManifest},
	{name: "pretty-printed", contentType: content.MediaTypeOCIManifest, body: "\n{\n  \"schemaVersion\": 2,\n  \"config\": " + shapeConfig + ",\n  \"layers\": []\n}\n", want: content.MediaTypeOCIManifest},
	{name: "oci index", contentType: content.MediaTypeOCIIndex, body: shapeIndex(content.MediaTypeOCIIndex, ""), want: content.MediaTypeOCIIndex},
	{name: "oci index without mediaType", contentType: content.MediaTypeOCIIndex, body: shapeIndex("", ""), want: content.MediaTypeOCIIndex},
	{name: "oci index with subject and annotations", contentType: content.MediaTypeOCIIndex, body: shapeIndex(content.MediaTypeOCIIndex, `,"annotations":{"a":"b"},"artifactType":"x/y"`), want: content.MediaTypeOCIIndex},
	{name: "docker v2 manifest", contentType: content.MediaTypeDockerManifest, body: shapeImage(content.MediaTypeDockerManifest, ""), want: content.MediaTypeDockerManifest},
	{name: "docker v2 list", contentType: content.MediaTypeDockerList, body: shapeIndex(content.MediaTypeDockerList, ""), want: content.MediaTypeDockerList},
	{name: "generic octet-stream, body says oci manifest", contentType: "application/octet-stream", body: shapeImage(content.MediaTypeOCIManifest, ""), want: content.MediaTypeOCIManifest},
	{name: "generic json, body says docker list", contentType: "application/json", body: shapeIndex(content.MediaTypeDockerList, ""), want: content.MediaTypeDockerList},
	{name: "generic text/plain with parameter, body says docker manifest", contentType: "text/plain; charset=utf-8", body: shapeImage(content.MediaTypeDockerManifest, ""), want: content.MediaTypeDockerManifest},
	{name: "no content type, body says oci index", contentType: "", body: shapeIndex(content.MediaTypeOCIIndex, ""), want: content.MediaTypeOCIIndex},
	{name: "no media type anywhere: config makes an oci manifest", contentType: "", body: shapeImage("", ""), want: content.MediaTypeOCIManifest},
	{name: "no media type anywhere: manifests make an oci index", contentType: "application/json", body: shapeIndex("", ""), want: content.MediaTypeOCIIndex},
	{name: "empty index", contentType: "", body: `{"schemaVersion":2,"manifests":[]}`, want: content.MediaTypeOCIIndex},
	{name: "null mediaType counts as absent", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":2,"mediaType":null,"config":` + shapeConfig + `,"layers":[]}`, want: content.MediaTypeOCIManifest},

	// Docker schema1, by every signal.
	{name: "schema1 signed content type", contentType: content.MediaTypeSchema1Signed, body: `{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[],"history":[],"signatures":` + shapeSignatures + `}`, schema1: true, why: "Content-Type " + content.MediaTypeSchema1Signed},
	{name: "schema1 unsigned content type", contentType: content.MediaTypeSchema1, body: `{"schemaVersion":1,"fsLayers":[]}`, schema1: true, why: "Content-Type " + content.MediaTypeSchema1},
	{name: "schema1 content type with an oci body", contentType: content.MediaTypeSchema1Signed, body: shapeImage("", ""), schema1: true},
	{name: "schema1 body mediaType", contentType: "", body: `{"schemaVersion":2,"mediaType":"` + content.MediaTypeSchema1Signed + `","config":` + shapeConfig + `}`, schema1: true, why: "the body's mediaType"},
	{name: "schema1 body mediaType under an oci content type", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":2,"mediaType":"` + content.MediaTypeSchema1 + `","config":` + shapeConfig + `}`, schema1: true},
	{name: "schemaVersion 1 under the oci content type", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":1,"config":` + shapeConfig + `,"layers":[]}`, schema1: true, why: "schemaVersion 1"},
	{name: "schemaVersion 1 with no media type anywhere", contentType: "", body: `{"schemaVersion":1,"fsLayers":[]}`, schema1: true},
	{name: "the disguise: oci content type, schema1 body with config and layers", contentType: content.MediaTypeOCIManifest,
		body: `{"schemaVersion":1,"config":` + shapeConfig + `,"layers":` + shapeLayers + `,"signatures":` + shapeSignatures + `}`, schema1: true},
	{name: "oci manifest with a signatures member", contentType: content.MediaTypeOCIManifest, body: shapeImage(content.MediaTypeOCIManifest, `,"signatures":`+shapeSignatures), schema1: true, why: `"signatures"`},
	{name: "oci manifest with null signatures", contentType: content.MediaTypeOCIManifest, body: shapeImage(content.MediaTypeOCIManifest, `,"signatures":null`), schema1: true, why: `"signatures"`},
	{name: "oci manifest with fsLayers", contentType: content.MediaTypeOCIManifest, body: shapeImage("", `,"fsLayers":[]`), schema1: true, why: `"fsLayers"`},
	{name: "index with signatures", contentType: content.MediaTypeOCIIndex, body: shapeIndex("", `,"signatures":`+shapeSignatures), schema1: true},
	{name: "docker list with signatures under a generic content type", contentType: "application/json", body: shapeIndex(content.MediaTypeDockerList, `,"signatures":[]`), schema1: true},

	// Members of another kind.
	{name: "index type with layers", contentType: content.MediaTypeOCIIndex, body: shapeIndex("", `,"layers":`+shapeLayers), why: `"layers"`},
	{name: "index type with config and layers", contentType: content.MediaTypeOCIIndex, body: shapeIndex(content.MediaTypeOCIIndex, `,"config":`+shapeConfig+`,"layers":`+shapeLayers), why: `"config"`},
	{name: "docker list with config", contentType: content.MediaTypeDockerList, body: shapeIndex("", `,"config":`+shapeConfig), why: `"config"`},
	{name: "index type with null layers", contentType: content.MediaTypeOCIIndex, body: shapeIndex("", `,"layers":null`), why: `"layers"`},
	{name: "manifest type with manifests", contentType: content.MediaTypeOCIManifest, body: shapeImage("", `,"manifests":`+shapeList), why: `"manifests"`},
	{name: "docker manifest with manifests", contentType: content.MediaTypeDockerManifest, body: shapeImage(content.MediaTypeDockerManifest, `,"manifests":[]`), why: `"manifests"`},
	{name: "manifest with schema1 history", contentType: content.MediaTypeOCIManifest, body: shapeImage("", `,"history":[]`), why: `"history"`},
	{name: "manifest with schema1 architecture", contentType: content.MediaTypeOCIManifest, body: shapeImage("", `,"architecture":"amd64"`), why: `"architecture"`},
	{name: "index body with generic content type and layers", contentType: "", body: shapeIndex(content.MediaTypeOCIIndex, `,"layers":[]`), why: `"layers"`},

	// Content-Type and body mediaType disagree.
	{name: "manifest content type, index body mediaType", contentType: content.MediaTypeOCIManifest, body: shapeIndex(content.MediaTypeOCIIndex, ""), why: "the body's mediaType is"},
	{name: "index content type, manifest body mediaType", contentType: content.MediaTypeOCIIndex, body: shapeImage(content.MediaTypeOCIManifest, ""), why: "the body's mediaType is"},
	{name: "oci content type, docker body mediaType", contentType: content.MediaTypeOCIManifest, body: shapeImage(content.MediaTypeDockerManifest, ""), why: "disagree"},
	{name: "body mediaType in other case", contentType: content.MediaTypeOCIManifest, body: shapeImage("application/vnd.OCI.image.manifest.v1+json", ""), why: "disagree"},
	{name: "body mediaType with parameters", contentType: content.MediaTypeOCIManifest, body: shapeImage(content.MediaTypeOCIManifest+"; charset=utf-8", ""), why: "disagree"},
	{name: "generic content type, unknown body mediaType", contentType: "application/json", body: shapeImage("application/vnd.example+json", ""), why: "not a manifest type"},
	{name: "no media type, config and manifests", contentType: "", body: shapeImage("", `,"manifests":[]`), why: "neither"},
	{name: "no media type, neither config nor manifests", contentType: "", body: `{"schemaVersion":2,"layers":[]}`, why: "neither"},
	{name: "unknown content type", contentType: "application/vnd.example+json", body: shapeImage("", ""), why: "not a manifest type"},
	{name: "html content type", contentType: "text/html", body: shapeImage(content.MediaTypeOCIManifest, ""), why: "disagree"},
	{name: "content type without subtype", contentType: "/", body: shapeImage("", ""), why: "not a media type"},
	{name: "content type with two subtypes", contentType: content.MediaTypeOCIManifest + "/x", body: shapeImage("", ""), why: "not a media type"},
	{name: "two content types", contentType: content.MediaTypeOCIManifest + ", " + content.MediaTypeOCIIndex, body: shapeImage("", ""), why: "not a media type"},
	{name: "content type with spaces", contentType: "application/vnd.oci.image manifest", body: shapeImage("", ""), why: "not a media type"},
	{name: "mediaType not a string", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":2,"mediaType":7,"config":` + shapeConfig + `}`, why: "mediaType is not a string"},

	// Case variants and duplicates: encoding/json and case-sensitive parsers read them differently.
	{name: "MediaType in capitals", contentType: "", body: `{"schemaVersion":2,"MediaType":"` + content.MediaTypeOCIIndex + `","config":` + shapeConfig + `}`, why: `spelled "mediaType"`},
	{name: "mediaType and MediaType", contentType: "", body: `{"schemaVersion":2,"mediaType":"` + content.MediaTypeOCIManifest + `","MediaType":"` + content.MediaTypeOCIIndex + `","config":` + shapeConfig + `}`, why: `"mediaType" and "MediaType"`},
	{name: "Layers in an index", contentType: content.MediaTypeOCIIndex, body: shapeIndex("", `,"Layers":`+shapeLayers), why: `spelled "layers"`},
	{name: "Signatures", contentType: content.MediaTypeOCIManifest, body: shapeImage("", `,"Signatures":`+shapeSignatures), why: `spelled "signatures"`},
	{name: "SchemaVersion", contentType: content.MediaTypeOCIManifest, body: `{"SchemaVersion":1,"config":` + shapeConfig + `}`, why: `spelled "schemaVersion"`},
	{name: "long s folds to s for encoding/json", contentType: content.MediaTypeOCIManifest, body: shapeImage("", `,"ſignatures":`+shapeSignatures), why: `spelled "signatures"`},
	{name: "unknown members differing in case", contentType: content.MediaTypeOCIManifest, body: shapeImage("", `,"x":1,"X":2`), why: "ignore case"},
	{name: "kelvin sign folds to k", contentType: content.MediaTypeOCIManifest, body: shapeImage("", `,"`+"\u212a"+`ey":1,"key":2`), why: "ignore case"},
	{name: "exact duplicate unknown member", contentType: content.MediaTypeOCIManifest, body: shapeImage("", `,"vendorKey":1,"vendorKey":2`), why: "twice"},
	{name: "exact duplicate schemaVersion", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":1,"schemaVersion":2,"config":` + shapeConfig + `}`, why: "twice"},
	{name: "exact duplicate config", contentType: content.MediaTypeOCIManifest, body: shapeImage("", `,"config":`+shapeConfig), why: "twice"},

	{name: "layer with mediaType and MediaType", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":2,"config":` + shapeConfig +
		`,"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","MediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"` + digest.FromString("l").String() + `"}]}`,
		why: `layers[0] has the members "mediaType" and "MediaType"`},
	{name: "layer with Digest", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":2,"config":` + shapeConfig + `,"layers":[{"mediaType":"x","Digest":"` + digest.FromString("l").String() + `"}]}`,
		why: `layers[0] has the member "Digest"; it must be spelled "digest"`},
	{name: "config with two digests", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":2,"config":{"mediaType":"x","digest":"` + digest.FromString("a").String() + `","digest":"` + digest.FromString("b").String() + `"}}`,
		why: `config has the member "digest" twice`},
	{name: "index entry with two digests", contentType: content.MediaTypeOCIIndex, body: `{"schemaVersion":2,"manifests":[` + strings.Trim(shapeList, "[]") + `,{"digest":"` + digest.FromString("a").String() + `","dıgest":"x","DIGEST":"y"}]}`,
		why: `manifests[1] has the members "digest" and "DIGEST"`},
	{name: "subject with MediaType", contentType: content.MediaTypeOCIManifest, body: shapeImage("", `,"subject":{"MediaType":"x","digest":"`+digest.FromString("s").String()+`"}`), why: `subject has the member "MediaType"`},

	// schemaVersion.
	{name: "schemaVersion 3", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":3,"config":` + shapeConfig + `}`, why: "schemaVersion 3"},
	{name: "schemaVersion 0", contentType: content.MediaTypeOCIIndex, body: `{"schemaVersion":0,"manifests":[]}`, why: "schemaVersion 0"},
	{name: "schemaVersion missing", contentType: content.MediaTypeOCIManifest, body: `{"config":` + shapeConfig + `}`, why: "without schemaVersion"},
	{name: "schemaVersion null", contentType: content.MediaTypeOCIIndex, body: `{"schemaVersion":null,"manifests":[]}`, why: "without schemaVersion"},
	{name: "schemaVersion as a string", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":"2","config":` + shapeConfig + `}`, why: "not an integer"},
	{name: "schemaVersion 2.0", contentType: content.MediaTypeOCIManifest, body: `{"schemaVersion":2.0,"config":` + shapeConfig + `}`, why: "not an integer"},

	// Not one JSON object.
	{name: "array", contentType: content.MediaTypeOCIManifest, body: `[` + shapeImage("", "") + `]`, why: "not a JSON object"},
	{name: "string", contentType: content.MediaTypeOCIManifest, body: `"{}"`, why: "not a JSON object"},
	{name: "null", contentType: content.MediaTypeOCIIndex, body: `null`, why: "not a JSON object"},
	{name: "number", contentType: content.MediaTypeOCIIndex, body: `2`, why: "not a JSON object"},
	{name: "empty body", contentType: content.MediaTypeOCIManifest, body: ``, why: "not one JSON value"},
	{name: "html", contentType: content.MediaTypeOCIManifest, body: `<html>`, why: "not one JSON value"},
	{name: "trailing garbage", contentType: content.MediaTypeOCIManifest, body: shapeImage("", "") + `x`, why: "not one JSON value"},
	{name: "a second object", contentType: content.MediaTypeOCIManifest, body: shapeImage("", "") + `{"manifests":[]}`, why: "not one JSON value"},
	{name: "truncated", contentType: content.MediaTypeOCIManifest, body: strings.TrimSuffix(shapeImage("", ""), "}"), why: "not one JSON value"},
	{name: "byte order mark", contentType: content.MediaTypeOCIManifest, body: "\ufeff" + shapeImage("", ""), why: "not one JSON value"},
}

func TestCheckShape(t *testing.T) {
	for _, tt := range shapeCases {
		t.Run(tt.name, func(t *testing.T) {
			mt, err := checkShape(tt.contentType, []byte(tt.body))
			if tt.want != "" {
				if err != nil || mt != tt.want {
					t.Fatalf("checkShape = %q, %v; want %q", mt, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %q, want a refusal", mt)
			}
			if !errors.Is(err, errBadShape) || !errors.Is(err, errUnknownManifest) {
				t.Fatalf("err = %v, want errBadShape", err)
			}
			if errors.Is(err, errSchema1) != tt.schema1 {
				t.Fatalf("err = %v; schema1 = %v, want %v", err, errors.Is(err, errSchema1), tt.schema1)
			}
			if tt.schema1 && !strings.Contains(err.Error(), "Docker schema1 manifests are not served") {
				t.Fatalf("schema1 refusal without the reason: %v", err)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("err = %v, want %q in it", err, tt.why)
			}
		})
	}
}

// TestParseManifestShape: parseManifest refuses what checkShape refuses, with its error,
// and classifies by the media type checkShape decides.
func TestParseManifestShape(t *testing.T) {
	for _, tt := range shapeCases {
		p, err := parseManifest(tt.contentType, []byte(tt.body))
		_, shapeErr := checkShape(tt.contentType, []byte(tt.body))
		if shapeErr != nil {
			if err == nil || err.Error() != shapeErr.Error() {
				t.Errorf("%s: parseManifest err = %v, want %v", tt.name, err, shapeErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		wantIndex := tt.want == content.MediaTypeOCIIndex || tt.want == content.MediaTypeDockerList
		if (p.kind == kindIndex) != wantIndex {
			t.Errorf("%s: kind %s for %s", tt.name, p.kind, tt.want)
		}
	}
}

// memberViews are the top-level members of a JSON object as three kinds of parser read
// them: encoding/json (case-insensitive, last duplicate wins), a case-sensitive parser
// keeping the last duplicate, and one keeping the first.
type memberViews struct {
	goView          map[string]any // by canonical name, only the names of goFields
	last, first     map[string]json.RawMessage
	names           []string // every name as spelled, in order
	goErr, tokenErr error
}

var goFields = []string{"schemaVersion", "mediaType", "config", "layers", "manifests", "signatures", "fsLayers"}

func readViews(body []byte) memberViews {
	var v memberViews
	var g struct {
		SchemaVersion any `json:"schemaVersion"`
		MediaType     any `json:"mediaType"`
		Config        any `json:"config"`
		Layers        any `json:"layers"`
		Manifests     any `json:"manifests"`
		Signatures    any `json:"signatures"`
		FSLayers      any `json:"fsLayers"`
	}
	v.goErr = json.Unmarshal(body, &g)
	v.goView = map[string]any{"schemaVersion": g.SchemaVersion, "mediaType": g.MediaType, "config": g.Config, "layers": g.Layers,
		"manifests": g.Manifests, "signatures": g.Signatures, "fsLayers": g.FSLayers}
	if err := json.Unmarshal(body, &v.last); err != nil {
		v.tokenErr = err
		return v
	}
	v.first = map[string]json.RawMessage{}
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil {
		v.tokenErr = err
		return v
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			v.tokenErr = err
			return v
		}
		name := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			v.tokenErr = err
			return v
		}
		v.names = append(v.names, name)
		if _, ok := v.first[name]; !ok {
			v.first[name] = raw
		}
	}
	return v
}

// FuzzCheckShape: whatever checkShape accepts means one thing to every parser: the same
// members for encoding/json and for case-sensitive parsers (keeping the first or the last
// duplicate), never schema1 as containers/image's GuessMIMEType (and policy's
// isSignedSchema1) decide it, and no member of another kind under any spelling.
func FuzzCheckShape(f *testing.F) {
	for _, c := range shapeCases {
		f.Add(c.contentType, []byte(c.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		mt, err := checkShape(contentType, body)
		if err != nil {
			if !errors.Is(err, errBadShape) || !errors.Is(err, errUnknownManifest) {
				t.Fatalf("untyped refusal: %v", err)
			}
			return
		}
		if _, perr := parseManifest(contentType, body); perr != nil && !errors.Is(perr, errUnknownManifest) {
			t.Fatalf("parseManifest: untyped error %v", perr)
		}
		isImage := mt == content.MediaTypeOCIManifest || mt == content.MediaTypeDockerManifest
		isIndex := mt == content.MediaTypeOCIIndex || mt == content.MediaTypeDockerList
		if !isImage && !isIndex {
			t.Fatalf("accepted media type %q", mt)
		}
		v := readViews(body)
		if v.goErr != nil || v.tokenErr != nil {
			t.Fatalf("accepted a body parsers refuse: %v / %v", v.goErr, v.tokenErr)
		}
		if len(v.last) != len(v.names) {
			t.Fatalf("accepted duplicate members: %q", v.names)
		}
		for i, a := range v.names {
			for _, b := range v.names[i+1:] {
				if strings.EqualFold(a, b) {
					t.Fatalf("accepted members %q and %q, equal for encoding/json", a, b)
				}
			}
		}
		for _, name := range goFields {
			raw, inLast := v.last[name]
			if !bytes.Equal(raw, v.first[name]) {
				t.Fatalf("%s: first and last duplicates differ", name)
			}
			var sensitive any
			if inLast {
				if err := json.Unmarshal(raw, &sensitive); err != nil {
					t.Fatal(err)
				}
			}
			goValue := testsupport.JSON(t, v.goView[name])
			sensitiveValue := testsupport.JSON(t, sensitive)
			if !bytes.Equal(goValue, sensitiveValue) {
				t.Fatalf("%s: encoding/json reads %s, a case-sensitive parser %s", name, goValue, sensitiveValue)
			}
		}
		if v.goView["schemaVersion"] != float64(2) {
			t.Fatalf("accepted schemaVersion %v", v.goView["schemaVersion"])
		}
		if bodyType, _ := v.goView["mediaType"].(string); bodyType != "" && bodyType != mt {
			t.Fatalf("accepted as %s a body whose mediaType is %q", mt, bodyType)
		}
		checkDescriptorViews(t, body)
		var foreign []string
		if isImage {
			foreign = []string{"manifests", "signatures", "fsLayers", "history"}
		} else {
			foreign = []string{"config", "layers", "signatures", "fsLayers", "history"}
		}
		for _, name := range v.names {
			if slices.ContainsFunc(foreign, func(f string) bool { return strings.EqualFold(f, name) }) {
				t.Fatalf("accepted as %s a body with member %q", mt, name)
			}
		}
	})
}

// checkDescriptorViews: the mediaType and digest of every descriptor (config, layers,
// manifests) read by encoding/json are those a case-sensitive parser reads.
func checkDescriptorViews(t *testing.T, body []byte) {
	t.Helper()
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
	}
	var g struct {
		Config    *desc  `json:"config"`
		Layers    []desc `json:"layers"`
		Manifests []desc `json:"manifests"`
	}
	if json.Unmarshal(body, &g) != nil {
		return // parseManifest refuses it
	}
	var cs struct {
		Config    map[string]any   `json:"config"`
		Layers    []map[string]any `json:"layers"`
		Manifests []map[string]any `json:"manifests"`
	}
	if err := json.Unmarshal(body, &cs); err != nil {
		return
	}
	same := func(where string, d desc, m map[string]any) {
		mt, _ := m["mediaType"].(string)
		dg, _ := m["digest"].(string)
		if d.MediaType != mt || d.Digest != dg {
			t.Fatalf("%s: encoding/json reads %+v, a case-sensitive parser %v", where, d, m)
		}
	}
	if g.Config != nil && cs.Config != nil {
		same("config", *g.Config, cs.Config)
	}
	for i := range min(len(g.Layers), len(cs.Layers)) {
		same("layers", g.Layers[i], cs.Layers[i])
	}
	for i := range min(len(g.Manifests), len(cs.Manifests)) {
		same("manifests", g.Manifests[i], cs.Manifests[i])
	}
}

// TestGateRefusesShape: the gate denies what checkShape refuses without evaluating the
// policy, even one that accepts anything, and says why.
func TestGateRefusesShape(t *testing.T) {
	for _, c := range shapeCases {
		if c.want != "" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			m := manifest{mediaType: c.contentType, bytes: []byte(c.body)}
			m.digest = digest.FromBytes(m.bytes)
			w := newWorld(t)
			p := w.policy(`{"default":[{"type":"insecureAcceptAnything"}]}`)
			g := w.gate(p, nil)
			d := mustAdmit(t, g, testRepo, "1", m, false)
			if p.calls.Load() != 0 {
				t.Fatalf("%d evaluations", p.calls.Load())
			}
			if !strings.Contains(d.Reason, "is not trusted: unrecognised manifest: ") || !strings.Contains(d.Reason, c.why) {
				t.Fatalf("reason %q", d.Reason)
			}
		})
	}
}
