import type { HTTPChunk } from '../codec/http-chunk.js';
import type { AgentMessage, EdgeMessage } from '../codec/tunnel-codec.js';
import type { BeginOptions, ChannelStatus, ExchangeDuplex } from '../streams/exchange-duplex.js';

/**
 * An agent's control channel as the session protocol needs it: decoded messages in, decoded messages
 * out, and an end. A transport adapter (gRPC Register call, WebSocket stream 0) only moves frames;
 * the handshake and the control state machine are written once, over this interface.
 */
export interface ControlChannel {
  /** For logs and metrics: `grpc`, `websocket/proto`, `websocket/json`. */
  readonly transport: string;
  /** The agent's address, when the transport knows it. */
  readonly peer: string | undefined;
  /**
   * The agent's messages in order. Ends when the agent ends its control stream; throws when the
   * transport fails. One reader at a time: the handshake, then the session.
   */
  readonly messages: AsyncIterator<AgentMessage>;
  /** True once the transport is gone (no message will be sent or received). */
  readonly isClosed: boolean;
  /**
   * Hands `msg` to the transport; resolves once the transport took it (its send buffer below the
   * high-water mark), rejects once the transport is closed. The session's outbox awaits each send.
   */
  send(msg: EdgeMessage): Promise<void>;
  /**
   * Ends the channel. The adapter maps `err` through the session error table (session-errors.ts):
   * a refusal gets its gRPC status or close code, anything else a clean end. Idempotent.
   */
  close(err: Error): void;
  /**
   * Transports that multiplex on one connection (WebSocket) start an exchange directly: the request
   * HEADERS go out now and the duplex's sink skips them; its RESET travels on its own stream, so no
   * Cancel is sent. Without it the session uses its pool of agent-opened streams and Open/Cancel.
   */
  openDirect?(head: HTTPChunk): ExchangeDuplex;
}

/** A stream the agent opened (gRPC ForwardHTTP) that can carry exchanges one at a time. */
export interface ExchangeStream {
  readonly status: ChannelStatus;
  begin(id: string, options?: BeginOptions): ExchangeDuplex;
  close(err: Error | undefined): void;
}
