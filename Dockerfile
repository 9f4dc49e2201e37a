# personalize-watch operator image: only the operator package's binary (the emulator and the
# test harness are other crates of the workspace and never in it). The binary is static (glibc,
# crt-static); the distroless base adds CA certificates, the glibc name-service modules it uses
# for DNS, and a numeric non-root user.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies in their own layer: the real manifests and lock file with stub sources.
COPY Cargo.toml Cargo.lock ./
COPY crates/emulator/Cargo.toml crates/emulator/
COPY crates/runtime/Cargo.toml crates/runtime/
COPY crates/testkit/Cargo.toml crates/testkit/
COPY hack/build-image-binary.sh hack/
RUN mkdir -p src benches tests/integration crates/emulator/src crates/emulator/benches \
        crates/runtime/src crates/testkit/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > crates/emulator/src/main.rs \
    && touch src/lib.rs tests/integration/main.rs crates/emulator/src/lib.rs \
        crates/runtime/src/lib.rs crates/testkit/src/lib.rs \
    && echo 'fn main() {}' > benches/operator.rs \
    && echo 'fn main() {}' > crates/emulator/benches/pages.rs \
    && hack/build-image-binary.sh \
    && rm -rf src crates/runtime/src
COPY src ./src
COPY crates/runtime/src ./crates/runtime/src
RUN touch src/main.rs src/lib.rs crates/runtime/src/lib.rs \
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
# No transparent huge pages for the allocator even where the node enables them for every
# process (the binary itself asks for none): 2 MiB pages held tens of MiB the heap did not use.
ENV MIMALLOC_ALLOW_THP=0
ENTRYPOINT ["/personalize-watch"]
CMD ["run"]
