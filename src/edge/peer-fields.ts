import { FORWARDED_EPOCH_FIELD, type Lease } from '../actors/cluster.js';
import type { HTTPChunk } from '../codec/http-chunk.js';

/** Request field naming the tunnel key (`name`, `tcp:PORT`, `udp:PORT`) of an exchange a peer forwarded. */
export const FORWARDED_KEY_FIELD = 'jetty-forwarded-key';

/** Largest epoch a forwarded exchange may name (the store's counter fits a JS integer). */
const MAX_EPOCH = Number.MAX_SAFE_INTEGER;

const isForwardField = (name: string): boolean => {
  const n = name.toLowerCase();
  return n === FORWARDED_EPOCH_FIELD || n === FORWARDED_KEY_FIELD;
};

/**
 * `head` as the forwarder sends it to the owner of `lease`: any forwarding field the public client
 * wrote is dropped, then the key and epoch of the lease are added (one of each).
 */
export function withForwardFields(head: HTTPChunk, lease: Lease): HTTPChunk {
  const headers = (head.headers ?? []).filter((h) => !isForwardField(h.name));
  headers.push({ name: FORWARDED_KEY_FIELD, value: lease.key }, { name: FORWARDED_EPOCH_FIELD, value: String(lease.epoch) });
  return { ...head, headers };
}

/** What the owner reads from a forwarded head: the key, the epoch, and the head the agent will see. */
export interface ForwardedHead {
  key: string;
  epoch: number;
  /** `head` without the forwarding fields: they stop at the owner. */
  head: HTTPChunk;
}

/**
 * The forwarding fields of a head from a peer, or undefined when they are missing, repeated or
 * malformed (a broken peer: the exchange is refused, the connection goes on).
 */
export function takeForwardFields(head: HTTPChunk): ForwardedHead | undefined {
  let key: string | undefined;
  let epochText: string | undefined;
  const rest = [];
  for (const h of head.headers ?? []) {
    const n = h.name.toLowerCase();
    if (n === FORWARDED_KEY_FIELD) {
      if (key !== undefined) return undefined;
      key = h.value;
    } else if (n === FORWARDED_EPOCH_FIELD) {
      if (epochText !== undefined) return undefined;
      epochText = h.value;
    } else {
      rest.push(h);
    }
  }
  if (!key || epochText === undefined || !/^\d{1,16}$/.test(epochText)) return undefined;
  const epoch = Number(epochText);
  if (epoch > MAX_EPOCH) return undefined;
  return { key, epoch, head: { ...head, headers: rest } };
}
