# personalize-watch operator image: only the operator binary (the emulator is never in it).
# The binary is static (glibc, crt-static); the distroless base adds CA certificates, the glibc
# name-service modules it uses for DNS, and a numeric non-root user.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies in their own layer: the real manifest and lock file with stub sources.
COPY Cargo.toml Cargo.lock ./
COPY hack/build-image-binary.sh hack/
RUN mkdir -p src/bin benches tests/integration \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > src/bin/personalize-emulator.rs \
    && touch src/lib.rs tests/integration/main.rs \
    && echo 'fn main() {}' > benches/emulator_pages.rs \
    && hack/build-image-binary.sh \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cp "$(hack/build-image-binary.sh)" /personalize-watch

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="personalize-watch" \
      org.opencontainers.image.description="Kubernetes operator that watches AWS Personalize batch inference jobs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/personalize-watch/personalize-watch"
COPY --from=build /personalize-watch /personalize-watch
USER 65532:65532
ENTRYPOINT ["/personalize-watch"]
CMD ["run"]
