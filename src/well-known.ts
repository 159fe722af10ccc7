/** Paths on the edge's own host that agents use (shared by edge and agent, which never import each other). */

/** Where agents ask the edge what it offers. */
export const DISCOVERY_PATH = '/_jetty/discovery';
/** WebSocket upgrade path for agents. */
export const WS_PATH = '/_jetty/ws';

/** `x-jetty-error` of the edge's answer to plain HTTP on its HTTPS listener. */
export const TLS_REQUIRED_ERROR = 'tls_required';

/** WebSocket close codes an edge uses to refuse a Hello (4000–4999 are for applications). */
export const WS_CLOSE_BAD_HELLO = 4400;
export const WS_CLOSE_UNAUTHORIZED = 4401;
export const WS_CLOSE_NAME_NOT_ALLOWED = 4403;
export const WS_CLOSE_NAME_TAKEN = 4409;
export const WS_CLOSE_UNAVAILABLE = 4503;
