import { adapterDetails, backendReportOf } from '../services/training.ts';
import { printJson, type Command } from './command.ts';

const doctor: Command = {
  name: 'doctor',
  args: '',
  summary: 'Check which TF.js backends (CUDA GPU, WebGPU, libtensorflow, wasm, plain JS) can run here and why not.',
  options: {
    json: { type: 'boolean', help: 'print one JSON object instead of text' },
  },
  async run({ values, io }) {
    const report = await backendReportOf();
    if (values.json) return printJson(io, report);
    for (const c of report.candidates) {
      const status = c.usable ? `usable: ${c.device}` : c.found ? 'found, not usable' : 'not found';
      io.out(`${c.usable ? 'ok  ' : 'no  '} ${c.backend.padEnd(10)} ${c.package.padEnd(30)} ${status}${c.reason ? ` (${c.reason})` : ''}\n`);
      for (const line of c.adapter ? adapterDetails(c.adapter) : []) io.out(`${' '.repeat(16)}${line}\n`);
    }
    for (const note of report.notes) io.out(`     ${note}\n`);
    io.out(`training will use: ${report.recommended}\n`);
  },
};

export const doctorCommands: Command[] = [doctor];
