import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { openProject } from '../../app/store/project.ts';
import { tempDir } from '../helpers.ts';

const PROJECT_MODULE = path.resolve(import.meta.dirname, '../../app/store/project.ts');

/**
 * A child that opens a project when told to, at a given wall-clock instant (busy-waiting for it,
 * so both racers call openProject within microseconds), and answers "won" or the error's code.
 */
const RACER = `
import readline from 'node:readline';
import { openProject } from ${JSON.stringify(PROJECT_MODULE)};
let project = null;
for await (const line of readline.createInterface({ input: process.stdin })) {
  const [command, dir, startAt] = line.split('\\t');
  if (command === 'close') {
    project?.close();
    project = null;
    console.log('closed');
    continue;
  }
  while (performance.timeOrigin + performance.now() < Number(startAt));
  try {
    project = openProject(dir, { create: command === 'create' });
    console.log('won');
  } catch (error) {
    console.log(error.code ?? String(error));
  }
}
`;

class Racer {
  private readonly lines: AsyncIterator<string>;
  constructor(readonly child: ChildProcessByStdio<Writable, Readable, null>) {
    this.lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }
  async ask(line: string): Promise<string> {
    this.child.stdin.write(line + '\n');
    return (await this.lines.next()).value;
  }
}

test('two processes opening one project at the same instant: exactly one gets it, 50 rounds out of 50', async () => {
  const dir = tempDir();
  const script = path.join(dir, 'racer.mjs');
  fs.writeFileSync(script, RACER);
  const racers = [0, 1].map(() => new Racer(spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['pipe', 'pipe', 'inherit'] })));
  try {
    const outcomes: string[][] = [];
    for (let round = 0; round < 50; round++) {
      // Even rounds race to open an existing project, odd ones to create a new one.
      const projectDir = path.join(dir, `p${round}`);
      const command = round % 2 ? 'create' : 'open';
      if (command === 'open') openProject(projectDir, { create: true }).close();
      const startAt = performance.timeOrigin + performance.now() + 50;
      outcomes.push((await Promise.all(racers.map((r) => r.ask(`${command}\t${projectDir}\t${startAt}`)))).sort());
      await Promise.all(racers.map((r) => r.ask('close')));
    }
    const wrong = outcomes.map((o, round) => ({ round, o })).filter(({ o }) => o.join() !== 'project_locked,won');
    assert.deepEqual(wrong, [], `rounds without exactly one winner: ${JSON.stringify(wrong)}`);
  } finally {
    for (const racer of racers) racer.child.kill('SIGKILL');
  }
});

function writeLock(projectDir: string, content: string, ageSeconds: number): void {
  const file = path.join(projectDir, 'project.lock');
  fs.writeFileSync(file, content);
  const at = Date.now() / 1000 - ageSeconds;
  fs.utimesSync(file, at, at);
}

test('an empty lock file is taken as a lock being written, not as stale, until it is old', () => {
  const projectDir = path.join(tempDir(), 'p');
  openProject(projectDir, { create: true }).close();

  writeLock(projectDir, '', 0);
  assert.throws(() => openProject(projectDir), { code: 'project_locked', message: /being opened by another window/ });
  assert.equal(fs.readFileSync(path.join(projectDir, 'project.lock'), 'utf8'), '', 'left alone');

  writeLock(projectDir, '{"pid":', 60); // torn a minute ago
  const project = openProject(projectDir);
  const lock = JSON.parse(fs.readFileSync(path.join(projectDir, 'project.lock'), 'utf8'));
  assert.equal(lock.pid, process.pid);
  project.close();
  assert.deepEqual(fs.readdirSync(projectDir).filter((name) => name.startsWith('project.lock')), [], 'no lock or temp file left');
});

test("a dead process's lock is taken over, a live one's is not", async () => {
  const projectDir = path.join(tempDir(), 'p');
  openProject(projectDir, { create: true }).close();
  const exited = spawn(process.execPath, ['-e', '']);
  const deadPid = await new Promise<number>((resolve) => exited.once('exit', () => resolve(exited.pid!)));
  const lock = (pid: number) => JSON.stringify({ pid, host: os.hostname(), token: 't', since: 'then' });
  writeLock(projectDir, lock(deadPid), 0);
  openProject(projectDir).close();

  writeLock(projectDir, lock(process.ppid), 0); // the test runner: alive
  assert.throws(() => openProject(projectDir), { code: 'project_locked', message: new RegExp(`process ${process.ppid} since then`) });
});
