/**
 * Content types, shared by both servers of the studio (`contrast serve` over HTTP, the desktop
 * app's app:// protocol), so they label the same bytes the same way. No Node imports: the
 * Electron main process bundles this file too.
 */

/** The file types the built UI consists of; anything else in its folder is not served. */
const UI_FILE_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

/** Content type of a UI file by its extension (".js", any case); undefined for types the UI does not use. */
export function uiFileType(extension: string): string | undefined {
  return Object.hasOwn(UI_FILE_TYPES, extension.toLowerCase()) ? UI_FILE_TYPES[extension.toLowerCase()] : undefined;
}

/**
 * Content type of image bytes by their signature. The file's extension may lie, and a wrong
 * type with nosniff would show a broken image.
 */
export function sniffImageType(bytes: Uint8Array): string {
  const ascii = (start: number, end: number) => String.fromCharCode(...bytes.subarray(start, end));
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (ascii(1, 4) === 'PNG') return 'image/png';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'image/webp';
  if (ascii(0, 4) === 'GIF8') return 'image/gif';
  if (ascii(4, 12) === 'ftypavif' || ascii(4, 12) === 'ftypavis') return 'image/avif';
  if (ascii(0, 2) === 'BM') return 'image/bmp';
  return 'application/octet-stream';
}
