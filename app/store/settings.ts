/** Small per-project settings kept in the project itself (the settings table), so they travel with it. */
import type Database from 'better-sqlite3';

export function readSetting(db: Database.Database, key: string): string | null {
  return (db.prepare('SELECT value FROM settings WHERE key = ?').pluck().get(key) as string | undefined) ?? null;
}

export function writeSetting(db: Database.Database, key: string, value: string): void {
  db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
}
