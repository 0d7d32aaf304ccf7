# syntax=docker/dockerfile:1
# One image with both binaries (/nsint-agent, /nsint-collector), built the way
# `make build` builds them: static (CGO_ENABLED=0), -trimpath, stripped. The
# eBPF objects are committed Go-embedded files, so no clang is needed here.
#   docker build -t nsint.local/nsint:dev .
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/nsint-agent ./cmd/nsint-collector

# Distroless static: no shell, no package manager, CA certificates and tzdata only.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="nsint" \
	org.opencontainers.image.description="In-band Network Telemetry for every interface of every pod network namespace: node agent and collector" \
	org.opencontainers.image.source="https://github.com/nsint/nsint" \
	org.opencontainers.image.url="https://github.com/nsint/nsint" \
	org.opencontainers.image.documentation="https://github.com/nsint/nsint/blob/main/docs/kubernetes.md" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/nsint-agent /out/nsint-collector /
# The collector runs as this non-root user; the agent's DaemonSet sets
# runAsUser: 0 with four added capabilities (deploy/base/agent-daemonset.yaml).
USER 65532:65532
EXPOSE 4048/tcp 8080/tcp 32766/udp
ENTRYPOINT ["/nsint-agent"]
