package policy

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseSignatureBlob(t *testing.T) {
	sigstoreJSON := []byte("\x00sigstore-json\n" + `{"mimeType":"application/vnd.dev.cosign.simplesigning.v1+json","payload":"e30=","annotations":{"dev.cosignproject.cosign/signature":"c2ln"}}`)
	tests := []struct {
		name       string
		blob       []byte
		wantFormat SignatureFormat
		wantData   []byte
		wantErr    bool
	}{
		{"compressed data, old format", []byte{0xA3, 0x01, 0x02}, FormatSimpleSigning, []byte{0xA3, 0x01, 0x02}, false},
		{"compressed data, new format", []byte{0xC8, 0x01}, FormatSimpleSigning, []byte{0xC8, 0x01}, false},
		{"one-pass signature", []byte{0x90, 0x0D}, FormatSimpleSigning, []byte{0x90, 0x0D}, false},
		{"one-pass signature, containers/image's 0x3D", []byte{0x3D}, FormatSimpleSigning, []byte{0x3D}, false},
		{"one-pass signature 0x93 is refused as in containers/image", []byte{0x93}, "", nil, true},
		{"signature packet", []byte{0x89, 0x01}, FormatSimpleSigning, []byte{0x89, 0x01}, false},
		{"new-format signature packet", []byte{0xC2}, FormatSimpleSigning, []byte{0xC2}, false},
		{"ASCII armor", []byte("-----BEGIN PGP MESSAGE-----\n"), "", nil, true},
		{"HTML page", []byte("<html>"), "", nil, true},
		{"JSON", []byte("{}"), "", nil, true},
		{"empty", nil, "", nil, true},
		{"wrapped simple-signing", []byte("\x00simple-signing\n\xA3\x01"), FormatSimpleSigning, []byte{0xA3, 0x01}, false},
		{"wrapped, empty data", []byte("\x00simple-signing\n"), FormatSimpleSigning, []byte{}, false},
		{"wrapped bogus format", []byte("\x00bogus\nxx"), "", nil, true},
		{"wrapped without newline", []byte("\x00simple-signing"), "", nil, true},
		{"wrapped non-ASCII name", []byte("\x00simple\x01signing\n"), "", nil, true},
		{"sigstore-json", sigstoreJSON, FormatCosign, []byte("{}"), false},
		{"sigstore-json not JSON", []byte("\x00sigstore-json\nnot json"), "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := ParseSignatureBlob(tt.blob)
			if tt.wantErr {
				if !errors.Is(err, ErrUnrecognizedSignature) {
					t.Fatalf("error = %v, want ErrUnrecognizedSignature", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sig.Format != tt.wantFormat || !bytes.Equal(sig.Data, tt.wantData) {
				t.Fatalf("got %+v", sig)
			}
		})
	}
	sig, err := ParseSignatureBlob(sigstoreJSON)
	if err != nil || sig.MIMEType != "application/vnd.dev.cosign.simplesigning.v1+json" || sig.Annotations["dev.cosignproject.cosign/signature"] != "c2ln" {
		t.Fatalf("sigstore-json: %+v, %v", sig, err)
	}
	// The result must not alias the input.
	blob := []byte{0xA3, 0x01}
	sig, _ = ParseSignatureBlob(blob)
	blob[1] = 0xFF
	if sig.Data[1] != 0x01 {
		t.Fatal("ParseSignatureBlob retained its input")
	}
}

func FuzzParseSignatureBlob(f *testing.F) {
	for _, seed := range [][]byte{
		{0xA3, 0x01}, {0x90}, {0x3D}, {0x89}, {0x00},
		[]byte("\x00simple-signing\n\xA3"),
		[]byte("\x00sigstore-json\n{\"mimeType\":\"x\",\"payload\":\"e30=\",\"annotations\":{\"a\":\"b\"}}"),
		[]byte("\x00bogus\n"), []byte("-----BEGIN PGP MESSAGE-----"), nil,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sig, err := ParseSignatureBlob(data)
		if err != nil {
			if !errors.Is(err, ErrUnrecognizedSignature) {
				t.Fatalf("error %v does not wrap ErrUnrecognizedSignature", err)
			}
			return
		}
		switch sig.Format {
		case FormatSimpleSigning:
			if data[0] != 0 && !bytes.Equal(sig.Data, data) {
				t.Fatal("a raw OpenPGP blob was altered")
			}
		case FormatCosign:
			if sig.Annotations == nil {
				t.Fatal("nil annotations")
			}
		default:
			t.Fatalf("unexpected format %q", sig.Format)
		}
	})
}
