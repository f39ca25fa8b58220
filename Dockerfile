# helpline's container image (docs/deployment.md, "Container"). Multi-stage: build with the Rust
# image, run on Debian slim as a non-root user, the SQLite database and the key file on a volume.
#
#   docker build -t helpline .
#   docker run -d --name helpline -p 8080:8080 -v helpline-data:/var/lib/helpline helpline
#   docker exec -i helpline helpline user add --username admin --role admin --password-stdin
#
# The key file is created on the volume at first start (HELPLINE_KEY_FILE); back it up apart from the
# database (docs/security.md). For PostgreSQL set DATABASE_URL and mount a key file instead.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin helpline \
 && strip target/release/helpline

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system helpline \
 && useradd --system --gid helpline --home-dir /var/lib/helpline --shell /usr/sbin/nologin helpline \
 && install -d -o helpline -g helpline -m 0700 /var/lib/helpline
COPY --from=build /src/target/release/helpline /usr/local/bin/helpline
USER helpline
WORKDIR /var/lib/helpline
VOLUME ["/var/lib/helpline"]
ENV DATABASE_URL=sqlite:/var/lib/helpline/helpline.db \
    HELPLINE_KEY_FILE=/var/lib/helpline/helpline.keys \
    HELPLINE_LISTEN=0.0.0.0:8080
EXPOSE 8080
# `serve` migrates at start; SIGTERM (docker stop) tells every socket to reconnect and exits 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '200' <&3"]
CMD ["helpline", "serve"]
