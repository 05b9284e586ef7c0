/**
 * Draws the app icon (two overlapping views of one image, the idea behind contrastive learning)
 * and writes resources/icons/icon.png, from which electron-builder derives .icns and .ico.
 *
 *   node --import tsx resources/icons/make_icons.ts
 */
import path from 'node:path';
import sharp from 'sharp';

const SIZE = 512;

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}" viewBox="0 0 512 512">
  <defs>
    <linearGradient id="tile" x1="0" y1="0" x2="1" y2="1">
      <stop offset="0" stop-color="#1f2a44"/>
      <stop offset="1" stop-color="#0d1321"/>
    </linearGradient>
  </defs>
  <rect x="16" y="16" width="480" height="480" rx="104" fill="url(#tile)"/>
  <rect x="92" y="132" width="220" height="220" rx="36" fill="#3fa7d6" fill-opacity="0.9"/>
  <rect x="200" y="180" width="220" height="220" rx="36" fill="#f59e0b" fill-opacity="0.85"/>
  <rect x="200" y="180" width="112" height="172" fill="#f4f1de"/>
</svg>`;

const out = path.join(import.meta.dirname, 'icon.png');
await sharp(Buffer.from(svg)).png({ compressionLevel: 9 }).toFile(out);
console.log(`wrote ${out}`);
