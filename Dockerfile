# One image holds the three binaries; docker-compose.yml picks one per container.
# docs/containers.md has the figures behind each choice (build times, size, memory).
#
#   docker build -t taskq:local .                           # the `image` profile (Cargo.toml)
#   docker build --build-arg PROFILE=release -t taskq:lto .  # whole-program LTO, slower builds

ARG PROFILE=image

# The workspace's manifests, with every crate root (lib.rs, main.rs, build.rs, a test's root)
# replaced by a stub. Its content changes only with a Cargo.toml, Cargo.lock or a crate root
# added or removed, so the dependency layer built from it stays cached across source edits.
FROM rust:1.95-slim-bookworm AS skeleton
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN mkdir /skeleton \
 && cp Cargo.toml Cargo.lock /skeleton/ \
 && find crates -name Cargo.toml -exec cp --parents {} /skeleton/ \; \
 && find crates -regex '.*/\(lib\|main\|build\)\.rs\|crates/[^/]*/\(tests\|benches\|examples\|src/bin\)/[^/]*\.rs' \
      -exec sh -c 'mkdir -p "/skeleton/${1%/*}" && echo "#![allow(warnings)] fn main() { }" >"/skeleton/$1"' _ {} \;

FROM rust:1.95-slim-bookworm AS build
ARG PROFILE
WORKDIR /src
# Only the three shipped binaries (not bench, demo or the tests), and their dependencies.
ENV BUILD="cargo build --locked --profile ${PROFILE} -p producer -p consumer -p mock-api"
COPY --from=skeleton /skeleton ./
RUN $BUILD
COPY crates ./crates
# The sources copied keep their own times, older than the stubs just built: touched, they are
# newer, so cargo rebuilds the workspace's crates (and nothing else).
RUN find crates -name '*.rs' -exec touch {} + && $BUILD
# The runtime's whole file system: the binaries, the C libraries they link (as ldd lists them),
# the CA bundle for HTTPS to third-party APIs, and a user. No shell, no package manager, no curl:
# the healthchecks are `<binary> --healthcheck`.
RUN mkdir -p /rootfs/usr/local/bin /rootfs/etc/ssl/certs /rootfs/tmp \
 && cd target/${PROFILE} && cp producer consumer mock-api /rootfs/usr/local/bin/ \
 && ldd /rootfs/usr/local/bin/* | grep -o '/[^ ]*\.so[.0-9]*' | sort -u | xargs cp -L --parents -t /rootfs \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && echo 'taskq:x:10001:10001::/nonexistent:/nonexistent' >/rootfs/etc/passwd \
 && echo 'taskq:x:10001:' >/rootfs/etc/group \
 && echo 'hosts: files dns' >/rootfs/etc/nsswitch.conf \
 && chmod 1777 /rootfs/tmp

# Nothing but /rootfs: debian:bookworm-slim under the same files made a 103 MB image, of which
# the binaries used only the C library (docs/containers.md).
FROM scratch
COPY --from=build /rootfs /
USER taskq
ENV PATH=/usr/local/bin RUST_LOG=info
# A container started without a command serves the producer (on every interface: the
# container's port is what a deployment publishes); compose picks a binary per service and
# declares the one port each listens on. No EXPOSE here: it would show on every container made
# from this image, whichever binary it runs.
ENV PRODUCER_ADDR=0.0.0.0:9002
CMD ["producer"]
