package pgptest

import (
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

func clearsignEncode(w io.Writer, signer *packet.PrivateKey, config *packet.Config) (io.WriteCloser, error) {
	return clearsign.Encode(w, signer, config)
}
