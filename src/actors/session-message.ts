import type { AgentMessage, EdgeMessage } from '../codec/tunnel-codec.js';
import { ProtocolError } from '../errors.js';
import type { ExchangeDuplex } from '../streams/exchange-duplex.js';
import type { ExchangeStream } from './control-channel.js';
import type { OpenRequest, Queued } from './exchange-slots.js';

/** Messages of the AgentSession actor: lifecycle and control only, never body bytes. */
export type SessionMessage =
  | ({ type: 'OpenExchange' } & OpenRequest)
  | { type: 'Start'; registered: NonNullable<EdgeMessage['registered']> }
  | { type: 'Registered' }
  | { type: 'StreamIdle'; stream: ExchangeStream }
  | { type: 'StreamAttached'; exchangeId: string; stream: ExchangeStream }
  | { type: 'OpenTimeout'; exchangeId: string }
  | { type: 'QueueTimeout'; entry: Queued }
  | { type: 'ExchangeClosed'; exchange: ExchangeDuplex }
  | { type: 'Ping'; nonce: number }
  | { type: 'Pong'; nonce: number }
  | { type: 'Drain' }
  | { type: 'DrainSent' };

export /** An agent message as the session's mailbox takes it; an Error for one that breaks the protocol. */
function controlMessage(msg: AgentMessage): SessionMessage | Error | undefined {
  if (msg.pong) return { type: 'Pong', nonce: msg.pong.nonce };
  if (msg.drain) return { type: 'Drain' };
  if (msg.hello) return new ProtocolError('second Hello');
  return undefined;
}
