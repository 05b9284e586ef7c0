/**
 * Maps an app:// request to what may answer it: a file of the built UI (contained in its
 * folder) or an image of the open project by id. No electron import, so it is unit-tested.
 */
import nodePath from 'node:path';
import { uiFileType, type MediaKind } from '../app/services/images.ts';
import { APP_HOST, APP_SCHEME } from './security.ts';


export type { MediaKind };

export type AppRoute =
  | { kind: 'file'; file: string; mimeType: string }
  | { kind: 'media'; media: MediaKind; imageId: number }
  | { kind: 'refused'; status: 400 | 403 | 404; reason: string };

/** The same paths the HTTP server answers (contract.ts mediaPath), so the UI builds one URL for both. */
const MEDIA_ROUTE = /^\/api\/(thumb|image)\/([1-9][0-9]{0,15})$/;

/**
 * `rendererRoot` must be absolute. `pathApi` is node:path by default; tests pass path.win32 to
 * check drive letters and backslashes the way Windows resolves them.
 */
export function routeAppRequest(
  requestUrl: string,
  rendererRoot: string,
  pathApi: nodePath.PlatformPath = nodePath,
): AppRoute {
  let url: URL;
  try {
    url = new URL(requestUrl);
  } catch {
    return refused(400, 'malformed URL');
  }
  if (url.protocol !== `${APP_SCHEME}:` || url.host.toLowerCase() !== APP_HOST) return refused(403, 'not the app origin');

  const media = MEDIA_ROUTE.exec(url.pathname);
  if (media) return { kind: 'media', media: media[1] as MediaKind, imageId: Number(media[2]) };
  if (url.pathname.startsWith('/api/')) return refused(404, 'no such media route');

  const relative = containedRelativePath(url.pathname);
  if (typeof relative !== 'string') return relative;
  const root = pathApi.resolve(rendererRoot);
  const file = pathApi.resolve(root, relative || 'index.html');
  if (!file.startsWith(root + pathApi.sep)) return refused(403, 'outside the UI folder');
  const mimeType = uiFileType(pathApi.extname(file));
  if (!mimeType) return refused(404, 'not a UI file type');
  return { kind: 'file', file, mimeType };
}

/**
 * The URL path as a relative path of plain segments, or why it is refused. Encoded separators
 * are refused before decoding, since decoding them would smuggle `..` or a root past the checks.
 */
function containedRelativePath(urlPath: string): string | AppRoute {
  if (/%(2f|5c|00)/i.test(urlPath)) return refused(400, 'encoded separator or NUL in path');
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return refused(400, 'bad percent-encoding');
  }
  if (/[\0\\]/.test(decoded)) return refused(400, 'backslash or NUL in path');
  if (decoded.startsWith('//')) return refused(403, 'absolute path');
  const segments = decoded.split('/').filter((segment) => segment !== '');
  // ':' would make a Windows drive-relative path (C:x); '.'/'..' would climb out.
  if (segments.some((segment) => segment === '..' || segment === '.' || segment.includes(':'))) {
    return refused(403, 'path leaves the UI folder');
  }
  return segments.join('/');
}

function refused(status: 400 | 403 | 404, reason: string): AppRoute {
  return { kind: 'refused', status, reason };
}
