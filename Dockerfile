# syntax=docker/dockerfile:1.7
#
# One image for every CrowdCrunch service: `crowdcrunch serve <service>`.
#
#   docker build -t ghcr.io/crowdcrunch/crowdcrunch:dev .
#
# Stages: chef (toolchain + cargo-chef) -> planner (dependency recipe from the manifests)
# -> builder (dependencies cooked in their own cached layer, then the workspace) -> a
# distroless runtime with the one binary, running as a non-root user. The protos compile
# with the pure-Rust protox in a build script, so no system protoc is needed.

ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.78

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src
# The same profile settings for `cook` and `build`, so cooked dependencies are reused.
# SQLX_OFFLINE: sqlx query macros, if any, check against the committed .sqlx/ data.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never \
    SQLX_OFFLINE=true

# Reduce the workspace to its manifests and lockfile: this layer's output (recipe.json)
# changes only when dependencies change.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# The build's settings (SQLite's compile flags) apply to the dependencies too.
COPY .cargo/ .cargo/
# Dependencies only: cached until Cargo.toml / Cargo.lock change.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo chef cook --release --package crowdcrunch --bin crowdcrunch --recipe-path recipe.json
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo build --release --locked --package crowdcrunch --bin crowdcrunch \
 && install -D -m 0755 target/release/crowdcrunch /out/crowdcrunch

# glibc + libgcc, CA certificates, tzdata; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="crowdcrunch" \
      org.opencontainers.image.description="CrowdCrunch order-management services (gRPC) and GraphQL edge" \
      org.opencontainers.image.source="https://github.com/crowdcrunch/crowdcrunch" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/crowdcrunch /usr/local/bin/crowdcrunch
# distroless "nonroot" (numeric, so Kubernetes can verify runAsNonRoot).
USER 65532:65532
WORKDIR /tmp
# gRPC services, the edge's HTTP, Prometheus metrics.
EXPOSE 50051 8080 9090
ENTRYPOINT ["/usr/local/bin/crowdcrunch"]
CMD ["--help"]
