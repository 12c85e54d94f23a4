# One image holds the three binaries; docker-compose.yml picks one per container.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN cargo build --release --locked --bins \
 && cp target/release/producer target/release/consumer target/release/mock-api /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 taskq
COPY --from=build /usr/local/bin/producer /usr/local/bin/consumer /usr/local/bin/mock-api /usr/local/bin/
USER taskq
ENV RUST_LOG=info
# A container started without a command serves the producer (on every interface: the
# container's port is what a deployment publishes); compose picks a binary per service.
ENV PRODUCER_ADDR=0.0.0.0:9002
EXPOSE 9002
CMD ["producer"]
