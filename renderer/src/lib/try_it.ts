/** Try it's plumbing in the page: which images go in which call (pure, unit-tested), and bytes to and from base64. */

/**
 * Groups images (by their sizes in bytes, in order) into calls of at most `maxImages` images and
 * `maxBytes` in all, keeping the order; an image of up to `maxBytes` always fits a call of its own.
 * Sizes above `maxBytes` are refused before this (they are never sent).
 */
export function planCalls(sizes: number[], maxImages: number, maxBytes: number): number[][] {
  const calls: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  sizes.forEach((size, index) => {
    if (current.length > 0 && (current.length === maxImages || bytes + size > maxBytes)) {
      calls.push(current);
      current = [];
      bytes = 0;
    }
    current.push(index);
    bytes += size;
  });
  if (current.length > 0) calls.push(current);
  return calls;
}

/** A file's bytes as base64, the form the contract carries them in. */
export function base64Of(file: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ''));
    reader.onerror = () => reject(reader.error ?? new Error('the file could not be read'));
    reader.readAsDataURL(file);
  });
}

/** Bytes back from base64, to show a picture the desktop app read. */
export function blobOfBase64(data: string): Blob {
  const binary = atob(data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new Blob([bytes]);
}
