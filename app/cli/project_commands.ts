import { UserError } from '../contract/errors.ts';
import { importErrors, importFiles } from '../services/imports.ts';
import { changeClasses, classesOf, exportLabels, labelFromCsv } from '../services/labels.ts';
import { openProjectFor, projectCounts } from '../services/projects.ts';
import { shortenPath } from '../services/imports.ts';
import { printJson, stringOption, withProject, type Command } from './command.ts';
import { formatDuration, progressBar } from './progress.ts';

const init: Command = {
  name: 'init',
  args: '<dir>',
  summary: 'Create a new project folder (project.db, checkpoints/, exports/).',
  options: {},
  async run({ positionals, io }) {
    const project = openProjectFor(positionals[0], { create: true });
    project.close();
    io.out(`created project at ${project.dir}\n`);
  },
};

const importCommand: Command = {
  name: 'import',
  args: '<project> <path...>',
  summary: 'Import image files and folders (recursive; duplicates and already imported files are skipped).',
  options: {
    'labels-from-folders': { type: 'boolean', help: 'label each image with the name of its folder' },
    split: { type: 'string', help: '"test" marks these images as a held-out test set' },
    json: { type: 'boolean', help: 'print progress and the summary as JSON lines' },
  },
  async run({ positionals: [dir, ...paths], values, io }) {
    const split = stringOption({ positionals: [], values, io }, 'split');
    if (split !== undefined && split !== 'test') throw new UserError(`--split only takes "test", got "${split}"`, 'usage');
    const bar = progressBar(io, 'importing');
    const summary = await withProject(dir, (project) =>
      importFiles(project, paths, {
        labelsFromFolders: Boolean(values['labels-from-folders']),
        testSet: split === 'test',
        onProgress: (p) => {
          if (values.json) printJson(io, { event: 'progress', ...p });
          else if (p.phase === 'importing') bar.update(p.done, p.total, `${p.imagesPerSecond.toFixed(0)} img/s, ETA ${formatDuration(p.etaSeconds)}`);
        },
      }),
    );
    bar.finish();
    if (values.json) {
      printJson(io, { event: 'summary', ...summary });
      return;
    }
    io.out(
      `imported ${summary.added} images in ${summary.seconds.toFixed(1)}s (${summary.imagesPerSecond.toFixed(0)} images/s); ` +
        `${summary.relinked ? `${summary.relinked} moved files re-linked, ` : ''}` +
        `${summary.duplicates} duplicates skipped, ${summary.alreadyKnown} already in the project, ${summary.errors} errors\n`,
    );
    for (const problem of summary.problems.filter((p) => p.status === 'error').slice(0, 20)) io.out(`  error: ${shortenPath(problem.path)}: ${problem.reason}\n`);
    if (summary.errors > 20) io.out(`  … and ${summary.errors - 20} more (contrast status ${dir} --errors)\n`);
  },
};

const label: Command = {
  name: 'label',
  args: '<project>',
  summary: 'Label images from a CSV file of path,class rows (relative paths are read against the CSV folder).',
  options: {
    csv: { type: 'string', help: 'the CSV file to read' },
    json: { type: 'boolean', help: 'print the result as JSON' },
  },
  async run({ positionals: [dir], values, io }) {
    const csv = values.csv;
    if (typeof csv !== 'string') throw new UserError('give the labels with --csv <file>', 'usage');
    const result = await withProject(dir, (project) => labelFromCsv(project, csv));
    if (values.json) return printJson(io, result);
    io.out(`labelled ${result.applied} images\n`);
    if (result.unknownPaths.length) {
      io.err(`${result.unknownPaths.length} paths are not images of this project:\n`);
      for (const p of result.unknownPaths.slice(0, 20)) io.err(`  ${p}\n`);
    }
    return result.applied === 0 && result.unknownPaths.length > 0 ? 1 : 0;
  },
};

const classes: Command = {
  name: 'classes',
  args: '<project> [add <name> | rename <old> <new> | merge <from> <into> | delete <name>]',
  summary: 'List classes with their label counts, or change them.',
  options: { json: { type: 'boolean' } },
  maxArgs: 4,
  async run({ positionals: [dir, action, a, b], values, io }) {
    const needs = (count: number) => {
      const given = [a, b].filter((x) => x !== undefined).length;
      if (given !== count) throw new UserError(`classes ${action} takes ${count} name${count > 1 ? 's' : ''}`, 'usage');
    };
    const message = await withProject(dir, (project) => {
      switch (action) {
        case undefined: return null;
        case 'add': needs(1); changeClasses(project, { kind: 'add', name: a }); return `added class "${a}"`;
        case 'rename': needs(2); changeClasses(project, { kind: 'rename', from: a, to: b }); return `renamed "${a}" to "${b}"`;
        case 'merge': needs(2); return `merged "${a}" into "${b}" (${changeClasses(project, { kind: 'merge', from: a, into: b }).moved} labels moved)`;
        case 'delete': needs(1); return `deleted class "${a}" and its ${changeClasses(project, { kind: 'delete', name: a }).removed} labels`;
        default: throw new UserError(`unknown action "${action}" (add, rename, merge or delete)`, 'usage');
      }
    });
    if (message) return void io.out(message + '\n');
    const list = await withProject(dir, (project) => classesOf(project), true);
    if (values.json) return printJson(io, list);
    if (list.length === 0) io.out('no classes yet\n');
    for (const c of list) io.out(`${String(c.labels).padStart(7)}  ${c.name}\n`);
  },
};

const status: Command = {
  name: 'status',
  args: '<project>',
  summary: 'Counts of images, import errors, duplicates, labels per class, splits and runs.',
  options: {
    json: { type: 'boolean', help: 'print as JSON' },
    errors: { type: 'boolean', help: 'list every file that failed to import, with its reason' },
  },
  async run({ positionals: [dir], values, io }) {
    const { summary, errors } = await withProject(
      dir,
      (project) => ({ summary: projectCounts(project, { checkOriginals: true }), errors: values.errors ? importErrors(project) : [] }),
      true,
    );
    if (values.json) return printJson(io, values.errors ? { ...summary, errorFiles: errors } : summary);
    io.out(
      [
        `images:      ${summary.images} (${summary.labelled} labelled, ${summary.unlabelled} unlabelled)`,
        `import:      ${summary.importErrors} errors, ${summary.duplicates} duplicates skipped`,
        `originals:   ${summary.missingOriginals ? `${summary.missingOriginals} missing (moved or deleted; importing them from their new place re-links them)` : 'none missing'}`,
        `splits:      ${summary.splits.train} train, ${summary.splits.val} val, ${summary.splits.test} test`,
        `runs:        ${summary.runs.total}${summary.runs.total ? ' (' + Object.entries(summary.runs.byStatus).map(([k, n]) => `${n} ${k}`).join(', ') + ')' : ''}`,
        `classes:     ${summary.classes.length === 0 ? 'none' : ''}`,
        ...summary.classes.map((c) => `  ${String(c.labels).padStart(7)}  ${c.name}${c.labels < 5 ? '  (fewer than 5 labels)' : ''}`),
      ].join('\n') + '\n',
    );
    for (const e of errors) io.out(`error: ${shortenPath(e.path)}: ${e.reason}\n`);
  },
};

const exportLabelsCommand: Command = {
  name: 'export-labels',
  args: '<project>',
  summary: 'Write the labels as labels.csv or as one folder of images per class.',
  options: {
    format: { type: 'string', help: 'csv (default) or folders' },
    out: { type: 'string', help: 'the folder to write into' },
    'with-author': { type: 'boolean', help: 'add an author column (host or the teammate who labelled)' },
  },
  async run({ positionals: [dir], values, io }) {
    const format = (values.format as string | undefined) ?? 'csv';
    if (format !== 'csv' && format !== 'folders') throw new UserError(`--format is csv or folders, got "${format}"`, 'usage');
    if (typeof values.out !== 'string') throw new UserError('give the destination with --out <dir>', 'usage');
    const out = values.out;
    await withProject(dir, (project) => {
      const { path: target, written, missing } = exportLabels(project, format, out, Boolean(values['with-author']));
      if (format === 'csv') return void io.out(`wrote ${target}\n`);
      io.out(`copied ${written} images into ${out}\n`);
      for (const m of missing) io.err(`missing (moved or deleted since import): ${m}\n`);
    }, true);
  },
};

export const projectCommands: Command[] = [init, importCommand, label, classes, status, exportLabelsCommand];
