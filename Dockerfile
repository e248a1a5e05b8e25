# One image for both the worker and the API; docker-compose.yml picks the
# entry point with `command:`. TypeScript runs through tsx (a runtime
# dependency), so there is no build step and the source ships as-is.
FROM node:20-bookworm-slim

ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false

WORKDIR /app

# Dependencies first, so a source-only change reuses this layer.
# `npm ci`: exactly the lockfile, which lists every platform's optional
# native packages (test/unit/lockfile.test.ts keeps it so).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit && npm cache clean --force

# The source: schemas workflows activities api worker scripts cli, plus
# tsconfig.json (tsx reads it). `COPY . .` with the .dockerignore rather than
# one COPY per directory, because a COPY of a directory that does not exist
# (yet) fails the build; .dockerignore keeps tests, data, secrets and
# node_modules out.
COPY . .

# The workflow bundle is built once here, so workers start without bundling.
RUN node --import tsx scripts/bundle-workflows.ts dist/workflow-bundle.js

# Runs unprivileged. Nothing under /app is written at run time (tsx caches in
# /tmp; connections come from a read-only mount).
USER node

CMD ["node", "--import", "tsx", "worker/main.ts"]
