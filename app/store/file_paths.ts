/**
 * File paths as the store keeps them. A path whose bytes are valid UTF-8 is kept as its text, as
 * always. Linux allows any bytes in a name, and a name that is not UTF-8 (`caf\xe9.jpg` written
 * by a Latin-1 system) cannot round-trip through a JavaScript string, so such a path is kept as a
 * `file://` URL with its bytes percent-encoded: lossless, readable, unique (no real absolute path
 * starts with "file:") and turned back into the exact bytes to open the file.
 */

const FILE_URL = 'file://';
/** Bytes a file URL may hold as they are (RFC 3986 path characters); every other byte is %XX. */
const URL_SAFE = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]$/;

/** The stored text of a path read from the file system as bytes. */
export function pathKey(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(bytes)) return text;
  let url = FILE_URL;
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    url += byte < 0x80 && URL_SAFE.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return url;
}

/** What to hand to `fs` for a stored path: the exact bytes where the name is not UTF-8. */
export function fsPath(key: string): string | Buffer {
  if (!key.startsWith(FILE_URL)) return key;
  const encoded = key.slice(FILE_URL.length);
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    if (encoded[i] === '%') {
      bytes.push(parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(encoded.charCodeAt(i));
  }
  return Buffer.from(bytes);
}

const ELLIPSIS = '…';

/**
 * A path short enough for a one-line message: the middle is elided, keeping the start (which
 * folder) and the end (which file). Paths can be up to 4,096 bytes; echoing that back buries the
 * message.
 */
export function shortenPath(text: string, max = 120): string {
  if (text.length <= max) return text;
  const head = Math.floor((max - ELLIPSIS.length) / 3);
  return text.slice(0, head) + ELLIPSIS + text.slice(text.length - (max - ELLIPSIS.length - head));
}
