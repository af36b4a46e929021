# CareLedger edge gateway — image for a balena fleet of Raspberry Pi 4 (64-bit) / Pi 5, or any
# Docker host. Operations: docs/operations.md. Built by `balena push` on balena's native arm64
# builders (this machine cannot build it: no Docker engine here).
#
# Base image: the Docker Official Node.js image, Node 24 on Debian 12 "bookworm", slim variant.
# It is multi-arch (linux/amd64 and linux/arm64/v8 among others), so the same Dockerfile builds the
# arm64 image for a Pi and an amd64 image for a test host. balena stopped publishing its balenalib
# base images in 2025 and recommends Docker Official Images (docs.balena.io, "Base images"), so
# balenalib/raspberrypi4-64-node is not used. Do not switch to a bullseye-based image: the prebuilt
# better-sqlite3 binary needs glibc >= 2.34 and GLIBCXX_3.4.29 (bookworm has 2.36 / GCC 12).
# For reproducible releases, pin the tag to a digest: FROM node:24-bookworm-slim@sha256:…
FROM node:24-bookworm-slim

ENV NODE_ENV=production \
    CARELEDGER_GATEWAY_DATA=/data

WORKDIR /app

# ── dependencies (own layer: reused while only the source changes) ─────────────────────────────
# npm ci --omit=dev       runtime dependencies only, exactly as package-lock.json pins them. The
#                         `node` package (the dev machines' pinned Node 24) is a dev dependency:
#                         in the image the base image's Node 24 runs everything.
# --ignore-scripts        no runtime dependency needs an install script:
#                         better-sqlite3 13.2 ships prebuilt N-API binaries for linux-arm64
#                         (and linux-x64, musl variants) in its package — no compiler, no
#                         node-gyp, no network at install time.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force \
 && node -e "const D = require('better-sqlite3'); const db = new D(':memory:'); console.log('better-sqlite3 OK, SQLite', db.prepare('SELECT sqlite_version() AS v').get().v, 'on', process.arch); db.close()"

# ── source ─────────────────────────────────────────────────────────────────────────────────────
# Node 24 runs the TypeScript files directly (type stripping): no build step. bin/careledger.ts
# registers every role's commands at start-up, so cloud/ and devices/ are needed too, although
# this image only runs `careledger gateway …`.
COPY bin ./bin
COPY shared ./shared
COPY gateway ./gateway
COPY cloud ./cloud
COPY devices ./devices

# `careledger …` on PATH for operators in `balena ssh <device> gateway` (docs/operations.md).
# /data belongs to the unprivileged `node` user (uid 1000) of the base image: a fresh named
# volume mounted there takes this ownership on first use.
RUN printf '#!/bin/sh\nexec node /app/bin/careledger.ts "$@"\n' > /usr/local/bin/careledger \
 && chmod 0755 /usr/local/bin/careledger \
 && mkdir -p /data \
 && chown node:node /data \
 && chmod 0700 /data

USER node
VOLUME /data

# 1883 plain MQTT (development / isolated networks only), 8883 MQTT over TLS. /healthz and
# /metrics (CARELEDGER_HTTP_PORT, default 9464) listen on 127.0.0.1 inside the container and are
# deliberately not exposed.
EXPOSE 1883 8883

# `gateway start` handles SIGTERM: stops accepting, commits what is pending (PUBACKs go out),
# stops the back office, checkpoints the WAL. Give it time: stop_grace_period in docker-compose.yml.
STOPSIGNAL SIGTERM

# HTTP 200 from /healthz unless the database does not answer (503). A full disk or a corrupt
# database set aside still answers 200 ("storage_full" / "degraded"), so balenaEngine (which
# restarts unhealthy containers) never restarts the gateway in a loop for those. The start period
# covers quick_check of a large database on an SD card and the back office's start.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD ["node", "-e", "const h=process.env.CARELEDGER_HTTP_HOST||'127.0.0.1',p=process.env.CARELEDGER_HTTP_PORT||'9464';if(p==='0')process.exit(0);const a=h==='0.0.0.0'||h==='::'?'127.0.0.1':h.includes(':')?'['+h+']':h;fetch('http://'+a+':'+p+'/healthz',{signal:AbortSignal.timeout(8000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]

CMD ["node", "bin/careledger.ts", "gateway", "start"]
