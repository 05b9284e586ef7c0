import { fsPath } from './file_paths.ts';
import fs from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { UserError } from '../contract/errors.ts';
import { classIdFor, setLabels } from './labels.ts';

/** Splits CSV text into rows of fields (RFC 4180 quoting: "a ""b""", commas and newlines inside quotes). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; }
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      if (row.some((f) => f.trim() !== '')) rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  row.push(field);
  if (row.some((f) => f.trim() !== '')) rows.push(row);
  return rows;
}

/** What a spreadsheet would run as a formula at the start of a cell (OWASP, "CSV injection"). */
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * One CSV field. Text a spreadsheet would take for a formula (a class named =HYPERLINK(...))
 * gets a leading ' as OWASP advises, so it shows as text; parseCsvText takes it off again.
 */
export function csvField(value: string | number): string {
  const text = typeof value === 'string' && FORMULA_START.test(value) ? `'${value}` : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** A field as written before csvField neutralised it. */
function parseCsvText(field: string): string {
  return field.startsWith("'") && FORMULA_START.test(field.slice(1)) ? field.slice(1) : field;
}

export interface CsvLabelResult {
  applied: number;
  unknownPaths: string[];
}

/**
 * Applies a `path,class` CSV. Relative paths are read against the CSV's own folder; rows whose
 * image is not in the project are reported, not guessed at.
 */
export function applyLabelCsv(db: Database.Database, csvFile: string, author: string): CsvLabelResult {
  let text: string;
  try {
    text = fs.readFileSync(csvFile, 'utf8');
  } catch {
    throw new UserError(`cannot read ${csvFile}`);
  }
  const rows = parseCsv(text.replace(/^\uFEFF/, ''));
  if (rows.length && rows[0][0].trim().toLowerCase() === 'path') rows.shift();
  const base = path.dirname(path.resolve(csvFile));
  const idByPath = db.prepare('SELECT id FROM images WHERE path = ?');
  const unknownPaths: string[] = [];
  let applied = 0;
  rows.forEach((row, index) => {
    if (row.length < 2 || !row[0].trim() || !row[1].trim()) {
      throw new UserError(`${csvFile}: line ${index + 1} needs two columns, path and class`);
    }
  });
  db.transaction(() => {
    for (const [rawPath, className] of rows) {
      const found = idByPath.get(path.resolve(base, parseCsvText(rawPath.trim()))) as { id: number } | undefined;
      if (!found) { unknownPaths.push(rawPath); continue; }
      setLabels(db, [found.id], classIdFor(db, parseCsvText(className.trim())), 'human', author);
      applied++;
    }
  })();
  return { applied, unknownPaths };
}

interface ExportRow {
  id: number;
  path: string;
  className: string;
  source: string;
  author: string;
  split: string | null;
}

function labelRows(db: Database.Database): ExportRow[] {
  return db
    .prepare(
      `SELECT i.id, i.path, c.name AS className, l.source, l.author, s.split
       FROM labels l JOIN images i ON i.id = l.image_id JOIN classes c ON c.id = l.class_id
       LEFT JOIN splits s ON s.image_id = i.id ORDER BY i.id`,
    )
    .all() as ExportRow[];
}

/** Writes labels.csv (path,class,source,split[,author]) into `outDir`; returns the file written. */
export function exportLabelsCsv(db: Database.Database, outDir: string, withAuthor = false): string {
  fs.mkdirSync(outDir, { recursive: true });
  const lines = [withAuthor ? 'path,class,source,split,author' : 'path,class,source,split'];
  for (const row of labelRows(db)) {
    const fields = [row.path, row.className, row.source, row.split ?? ''];
    lines.push((withAuthor ? [...fields, row.author] : fields).map(csvField).join(','));
  }
  const file = path.join(outDir, 'labels.csv');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/**
 * Copies each labelled image into `outDir/<class>/`; images whose file has gone are listed, not
 * fatal. Every path is checked to lie inside `outDir` before it is written: names are checked
 * before anything is written, so a class named ".." (possible in projects made before names were
 * checked) cannot write elsewhere, and folders and files already there are checked for links out.
 */
export function exportLabelFolders(db: Database.Database, outDir: string): { written: number; missing: string[] } {
  const root = path.resolve(outDir);
  const copies = labelRows(db).map((row) => {
    const classDir = path.join(root, row.className.replace(/[\\/:*?"<>|]/g, '_'));
    const target = path.join(classDir, `${row.id}-${path.basename(row.path)}`);
    if (path.dirname(classDir) !== root || path.dirname(target) !== classDir) {
      throw new UserError(`class "${row.className}" cannot be a folder name: rename it, then export again`, 'bad_class_name');
    }
    return { source: row.path, classDir, target };
  });
  fs.mkdirSync(root, { recursive: true });
  const realRoot = fs.realpathSync(root);
  for (const classDir of new Set(copies.map((copy) => copy.classDir))) {
    fs.mkdirSync(classDir, { recursive: true });
    if (path.dirname(fs.realpathSync(classDir)) !== realRoot) throw linkedOut(classDir);
  }
  let written = 0;
  const missing: string[] = [];
  for (const { source, target } of copies) {
    if (fs.lstatSync(target, { throwIfNoEntry: false })?.isSymbolicLink()) throw linkedOut(target);
    try {
      fs.copyFileSync(fsPath(source), target);
      written++;
    } catch {
      missing.push(source);
    }
  }
  return { written, missing };
}

function linkedOut(file: string): UserError {
  return new UserError(`${file} is a link out of the export folder: remove it or export into an empty folder`, 'export_outside');
}
