// electron-builder's beforePack hook (runs in electron-builder's Node process, not in the app):
// builds better-sqlite3 for the Electron version and architecture being packed, into
// dist/electron-native/<platform>-<arch>/, which electron-builder.yml copies to resources/native.
import { register } from 'tsx/esm/api';

register();
const { buildElectronSqlite } = await import('./build_desktop.ts');

// electron-builder's Arch enum, by value.
const ARCH_NAMES = ['ia32', 'x64', 'armv7l', 'arm64', 'universal'];

export default async function beforePack(context) {
  const electronVersion = context.packager.info.framework.version;
  await buildElectronSqlite(electronVersion, ARCH_NAMES[context.arch]);
}
