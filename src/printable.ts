/**
 * Text from the network (request paths, close reasons, an edge's error details) made safe for a
 * terminal: C0 and C1 control characters and DEL, which start escape sequences (clear the screen,
 * move the cursor, retitle the window, write to the clipboard), are shown as `\xHH` instead.
 */
export function printable(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
