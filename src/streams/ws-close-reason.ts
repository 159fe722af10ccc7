/**
 * Longest WebSocket close reason, in UTF-8 bytes: a close frame carries at most 125 bytes, two of
 * which are the code (RFC 6455 §5.5). `ws` throws on a longer reason.
 */
export const MAX_WS_CLOSE_REASON_BYTES = 123;

/**
 * `text` cut to at most `maxBytes` bytes of UTF-8, never inside a character, so it can always be
 * passed to `WebSocket.close()`. Lone surrogates count as the replacement character they encode to.
 */
export function wsCloseReason(text: string, maxBytes = MAX_WS_CLOSE_REASON_BYTES): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.byteLength <= maxBytes) return bytes.toString('utf8');
  let end = maxBytes;
  // Step back over continuation bytes (10xxxxxx) to the first byte of the character that does not fit.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}
