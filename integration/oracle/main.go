// Command policypull is the test oracle for pullgate's policy verdicts: it copies an image
// with the containers/image library (what podman, CRI-O and skopeo use), under a given
// containers-policy.json and registries.d, and says whether the policy let it through.
//
//	policypull --policy policy.json --registries.d DIR docker://HOST/REPO:TAG dir:/tmp/out
//
// Exit status: 0 copied; 1 the policy rejected the image (the reason is printed); 2 any
// other failure, including signatures that could not be read (pullgate answers those with
// 503: it could not decide). It lives in its own Go module so that containers/image never
// enters pullgate's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// sourceHash is set at build time (-ldflags -X main.sourceHash=...) to the SHA-256 of
// go.mod, go.sum and main.go, so the tests can tell whether an installed binary is current.
var sourceHash = "unknown"

// transports are the ones the tests use; alltransports would also link containers/storage
// and its cgo graph drivers.
var transports = map[string]types.ImageTransport{"docker": docker.Transport, "dir": directory.Transport, "oci": layout.Transport}

// errRejected marks a policy rejection.
var errRejected = errors.New("rejected by the policy")

func main() {
	policyPath := flag.String("policy", "", "containers-policy.json to enforce (required)")
	registriesDir := flag.String("registries.d", "", "containers-registries.d folder (required)")
	printHash := flag.Bool("source-hash", false, "print the source hash this binary was built from and exit")
	flag.Parse()
	if *printHash {
		fmt.Println(sourceHash)
		return
	}
	if *policyPath == "" || *registriesDir == "" || flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: policypull --policy FILE --registries.d DIR SOURCE DESTINATION")
		os.Exit(2)
	}
	if err := run(context.Background(), *policyPath, *registriesDir, flag.Arg(0), flag.Arg(1)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, errRejected) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, policyPath, registriesDir, src, dest string) error {
	scratch, err := os.MkdirTemp("", "policypull-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	registriesConf := filepath.Join(scratch, "registries.conf") // no mirrors, no search registries
	if err := os.WriteFile(registriesConf, []byte("unqualified-search-registries = []\n"), 0o600); err != nil {
		return err
	}
	// Nothing is read from or written to the host's containers configuration.
	sys := &types.SystemContext{
		RegistriesDirPath:           registriesDir,
		SystemRegistriesConfPath:    registriesConf,
		SystemRegistriesConfDirPath: filepath.Join(scratch, "registries.conf.d"),
		AuthFilePath:                filepath.Join(scratch, "auth.json"),
		BlobInfoCacheDir:            scratch,
		BigFilesTemporaryDir:        scratch,
		DockerInsecureSkipTLSVerify: types.OptionalBoolTrue,
	}
	policy, err := signature.NewPolicyFromFile(policyPath)
	if err != nil {
		return fmt.Errorf("loading the policy: %w", err)
	}
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		return err
	}
	defer pc.Destroy()
	srcRef, err := parseImageName(src)
	if err != nil {
		return err
	}
	destRef, err := parseImageName(dest)
	if err != nil {
		return err
	}
	_, err = copy.Image(ctx, pc, destRef, srcRef, &copy.Options{SourceCtx: sys, DestinationCtx: sys})
	// copy.Image reports every failure of the policy check as "Source image rejected: ...",
	// whether a requirement rejected the image or its signatures could not be read (a .sig
	// manifest with Docker media types, a registry error). Reading them again tells the two
	// apart.
	if err == nil || !strings.Contains(err.Error(), "Source image rejected: ") {
		return err
	}
	if serr := readSignatures(ctx, sys, srcRef); serr != nil {
		return fmt.Errorf("%w (reading the signatures failed: %w)", err, serr)
	}
	return fmt.Errorf("%w: %w", errRejected, err)
}

// readSignatures reads the signatures of the image and, for a list, of every instance.
func readSignatures(ctx context.Context, sys *types.SystemContext, ref types.ImageReference) error {
	src, err := ref.NewImageSource(ctx, sys)
	if err != nil {
		return err
	}
	defer src.Close()
	if _, err := src.GetSignatures(ctx, nil); err != nil {
		return err
	}
	raw, mimeType, err := src.GetManifest(ctx, nil)
	if err != nil || !manifest.MIMETypeIsMultiImage(mimeType) {
		return err
	}
	list, err := manifest.ListFromBlob(raw, mimeType)
	if err != nil {
		return err
	}
	for _, d := range list.Instances() {
		if _, err := src.GetSignatures(ctx, &d); err != nil {
			return err
		}
	}
	return nil
}

// parseImageName parses TRANSPORT:REFERENCE as alltransports.ParseImageName does.
func parseImageName(s string) (types.ImageReference, error) {
	name, ref, ok := strings.Cut(s, ":")
	if t := transports[name]; ok && t != nil {
		return t.ParseReference(ref)
	}
	return nil, fmt.Errorf("%q: want docker:, dir: or oci: followed by a reference", s)
}
