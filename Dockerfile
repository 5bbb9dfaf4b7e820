# Actor engine image: HTTP ingestion -> Kafka -> actors -> PostgreSQL checkpoints.
#
#   docker build -t actor-engine .
#   docker compose up --build        (engine + Kafka + PostgreSQL, see docker-compose.yml)
#
# The Deno version matches the one the project pins (.ci/run installs deno@2.9.6).
ARG DENO_VERSION=2.9.6
FROM denoland/deno:${DENO_VERSION}

WORKDIR /app

# The image's unprivileged `deno` user owns the app directory and DATA_DIR; DENO_DIR (/deno-dir)
# already belongs to it in the base image.
RUN mkdir -p /app/data && chown -R deno:deno /app
USER deno

# Dependencies first, in their own layer: rebuilt only when deno.json or deno.lock change.
# --frozen fails the build instead of silently updating the lockfile.
# vendor/ holds the patched postgres.js that deno.json's import map loads in place of the npm package.
COPY --chown=deno:deno deno.json deno.lock ./
COPY --chown=deno:deno vendor/ ./vendor/
RUN deno install --frozen

# Source, then cache the whole module graph so start-up needs no network.
COPY --chown=deno:deno main.ts ./
COPY --chown=deno:deno engine/ ./engine/
COPY --chown=deno:deno actors/ ./actors/
COPY --chown=deno:deno http/ ./http/
COPY --chown=deno:deno sql/ ./sql/
COPY --chown=deno:deno scripts/ ./scripts/
RUN deno cache --frozen main.ts scripts/healthcheck.ts
# Save PGlite's initialised data directory once (39 MB), so a container starting on an empty DATA_DIR
# copies it (~0.5 s) instead of running initdb (~3 s).
RUN deno run -A --frozen scripts/pglite_template.ts

ENV PORT=8080 \
    DATA_DIR=/app/data
# An embedded engine's log and database live in DATA_DIR: a volume keeps them when the container is removed or
# replaced (`docker run -v engine-data:/app/data ...`; a new named volume starts as a copy of this empty, deno-owned
# directory). Without a mount, Docker gives each container an anonymous volume of its own.
VOLUME ["/app/data"]
EXPOSE 8080

# No curl in the image: scripts/healthcheck.ts probes /healthz with Deno's fetch at the address PORT and HOST bind,
# read as the engine reads them (a fixed 127.0.0.1 failed with HOST bound to one address, and PORT=" 8080 ").
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["deno", "run", "-A", "--frozen", "scripts/healthcheck.ts"]

# The image's entrypoint runs under tini; `deno task` forwards SIGTERM to `deno run`, so
# main.ts's graceful shutdown runs on `docker stop`.
CMD ["deno", "task", "start"]
