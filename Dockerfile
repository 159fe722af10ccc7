# A container image of Jetty (edge or agent). Untested here (no docker on the build machine); checked by
# reading against package.json's files, the build (tsc → dist/) and the paths the code reads at run
# time (package.json for --version, proto/tunnel.proto for the codec).
#   docker build -t jetty .
#   docker run -p 8080:8080 -p 8091:8091 -v /etc/jetty:/etc/jetty:ro jetty edge --config /etc/jetty/edge.yaml
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY bin bin
COPY proto proto
COPY src src
COPY test test
COPY bench bench
# npm ci runs the build (prepare: tsc → dist/); then only the runtime dependencies are kept.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production JETTY_LOG_FORMAT=json
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist/src dist/src
COPY --from=build /app/bin bin
COPY --from=build /app/proto proto
USER node
# public HTTP (and WebSocket agents), gRPC agents, admin (/livez /readyz /metrics)
EXPOSE 8080 8091 9090
# Docker sends SIGTERM on stop: the edge drains for grace-period (30 s); give it that with
# `docker stop -t 40`.
ENTRYPOINT ["node", "bin/jetty.js"]
CMD ["edge", "--config", "/etc/jetty/edge.yaml"]
