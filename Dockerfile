# pullgate container image: a static binary on an empty base, running as a non-root user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t pullgate .
#   docker run --rm -p 5000:5000 pullgate
#
# The image carries config.example.yaml as /etc/pullgate/config.yaml (with the example
# policy); mount your own configuration folder over /etc/pullgate for real use.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
ARG VERSION=dev
WORKDIR /src
ENV GOTOOLCHAIN=local CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath \
      -ldflags "-s -w -X github.com/pullgate/pullgate/internal/version.Version=${VERSION}" \
      -o /out/pullgate ./cmd/pullgate \
 && /out/pullgate version

FROM scratch
# Roots for the upstream registries' TLS certificates.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/pullgate /usr/local/bin/pullgate
COPY config.example.yaml /etc/pullgate/config.yaml
COPY examples /etc/pullgate/examples
ENV PATH=/usr/local/bin \
    PULLGATE_LISTEN=:5000
# A numeric user and group that exist nowhere else: the empty base has no /etc/passwd.
USER 65532:65532
EXPOSE 5000
ENTRYPOINT ["pullgate"]
CMD ["serve", "--config", "/etc/pullgate/config.yaml"]
