# syntax=docker/dockerfile:1
# hotconf as a container image: the `hotconf` CLI as ENTRYPOINT (default command: `run` on
# /etc/hotconf/hotconf.yaml), production dependencies only, numeric non-root user, no shell and no package
# manager at run time, nothing written to the image's own file system (readOnlyRootFilesystem: true works).
#
#   docker build -t ghcr.io/example/hotconf:0.1.0 .        # or: podman build ...
#   docker run --rm -v ./config:/etc/hotconf/config:ro -v ./schemas:/etc/hotconf/schemas:ro \
#     ghcr.io/example/hotconf:0.1.0 check --config-dir /etc/hotconf/config --schema-dir /etc/hotconf/schemas
#
# Without a registry (air-gapped CI, this repository's tests): test/deploy/local-bases.sh makes both bases from
# the machine's own Node.js; pass them with --build-arg BUILD_IMAGE=… --build-arg RUNTIME_IMAGE=….
# Pin the bases by digest (node:20.20.2-bookworm-slim@sha256:…) where your platform asks for it.
ARG BUILD_IMAGE=docker.io/library/node:20.20.2-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot

# --- build: compile the TypeScript (needs the dev dependencies) ---------------------------------------------
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: nothing here needs them (unix-dgram's native addon is only for systemd's sd_notify,
# which a container does not use), and none of a dependency's code runs at build time.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The build generates the validators of the meta-schemas and of schemas/hotconf.schema.json (dist/generated),
# then bundles the CLI's entry (dist/cli/main.js) with esbuild.
COPY scripts/build-validators.mjs scripts/bundle-cli.mjs ./scripts/
COPY schemas ./schemas
RUN npm run build

# --- deps: production dependencies only ---------------------------------------------------------------------
# Optional ones are left out: unix-dgram (sd_notify: no systemd in a container, and no install scripts here) and
# json-schema-to-typescript (`hotconf types`, a development command: 25 MB with prettier).
FROM ${BUILD_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

# --- runtime: node and the package, nothing else --------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
WORKDIR /app
# root-owned and read-only to the user that runs it
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json hotconf.yaml LICENSE* ./
COPY config ./config
COPY schemas ./schemas
ENV NODE_ENV=production
# Numeric, so that runAsNonRoot can check it; the same uid as deploy/kubernetes (runAsUser: 10001).
USER 10001:10001
# The HTTP API when hotconf.yaml (or --http) turns it on; deploy/kubernetes uses 0.0.0.0:8081.
EXPOSE 8081
# Exec form: node is PID 1 and gets SIGTERM itself (hotconf finishes the batch in flight, then exits 0).
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cli/main.js"]
CMD ["run", "--config", "/etc/hotconf/hotconf.yaml"]
