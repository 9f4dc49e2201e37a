# personalize-watch operator image, for people with Docker:
#   docker buildx build --platform linux/amd64,linux/arm64 -t personalize-watch .
# Releases build the same image without a Docker engine (hack/release.sh, with crane); a test
# (release::the_dockerfile_agrees_with_the_released_image) checks that both configs agree.
#
# The build stage runs on the builder's own platform and cross-builds for the target's with
# hack/build-static.sh: a static binary (glibc, crt-static; arm64 through Debian's aarch64 cross
# gcc). The image holds that binary and Debian's CA bundle, nothing else: no shell, no libraries,
# no name-service modules (static glibc resolves DNS and files itself).

FROM --platform=$BUILDPLATFORM rust:1.95-bookworm AS build
ARG TARGETARCH
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        gcc-aarch64-linux-gnu=4:12.2.0-3 libc6-dev-arm64-cross=2.36-8cross1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/target PW_CACHE=/cache
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/target \
    --mount=type=cache,target=/cache \
    cp "$(hack/build-static.sh "$TARGETARCH")" /personalize-watch

FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="personalize-watch" \
      org.opencontainers.image.description="Kubernetes operator that watches AWS Personalize batch inference jobs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/personalize-watch/personalize-watch"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /personalize-watch /personalize-watch
# No transparent huge pages for the allocator even where the node enables them for every
# process (the binary itself asks for none): 2 MiB pages held tens of MiB the heap did not use.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    MIMALLOC_ALLOW_THP=0
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/personalize-watch"]
CMD ["run"]
