import { UserError } from '../contract/errors.ts';
import { embedOutsideFiles, exportClusterTrainer, importWeights } from '../services/weights.ts';
import { numberOption, printJson, stringOption, withProject, type Command, type Invocation } from './command.ts';
import { backendFlag, trainFlagValues, trainFlags } from './train_flags.ts';

/** --arch, --width, --size and --seed, in the ranges training allows. */
function networkFlags(call: Invocation): { arch?: string; width?: number; imageSize?: number; seed?: number } {
  const values = trainFlagValues(call, ['depth', 'width', 'imageSize', 'seed']);
  return { arch: values.depth as string | undefined, width: values.width as number | undefined, imageSize: values.imageSize as number | undefined, seed: values.seed as number | undefined };
}

const importWeightsCommand: Command = {
  name: 'import-weights',
  args: '<project> <file>',
  summary: 'Import a pretrained ResNet (.safetensors, PyTorch .pth/.pt, or our TF.js model.json) as a finished pretrain run to fine-tune and distil.',
  options: {
    arch: { type: 'string', help: 'resnet18, resnet34 or resnet50: refuse the file unless it holds this network (default: whatever it holds)' },
    size: { type: 'string', help: 'image side the network sees from now on, in every run built on it (default 224, or the size our export was saved with)' },
    name: { type: 'string', help: 'a name for the imported network (default: the file name)' },
    json: { type: 'boolean', help: 'print the result as JSON' },
  },
  async run(call) {
    const [dir, file] = call.positionals;
    const { arch, imageSize } = networkFlags(call);
    const imported = await withProject(dir, (project) => importWeights(project, { file, arch, imageSize, name: stringOption(call, 'name') }));
    if (call.values.json) {
      printJson(call.io, imported);
      return;
    }
    const fromFile = imported.headLayers.filter((layer) => layer.startsWith('head_dense')).length;
    const classifier = imported.kind !== 'pretrain';
    const head = classifier ? 'a classifier' : fromFile ? `${fromFile} of 3 projection-head layers from the file` : 'projection head random (the file has none)';
    const next = classifier
      ? `next: contrast predict ${dir} <path...> --run ${imported.runId} --out preds.csv, or contrast distill ${dir} --from ${imported.runId}`
      : `next: contrast finetune ${dir} --from ${imported.runId}, or contrast train ${dir} --from ${imported.runId} --minutes M`;
    call.io.out(
      `run ${imported.runId} ${imported.kind} done: ${imported.name}, ${imported.network} (${imported.layout} layout, ${imported.format}); ` +
        `${imported.keys.mapped} keys mapped, ${imported.keys.ignored} left out, ${head}\n${next}\n`,
    );
  },
};

const embed: Command = {
  name: 'embed',
  args: '<project> <path...>',
  summary: "Write a finished run's encoder features for image files or folders as CSV (path, then one column per feature).",
  options: {
    run: { type: 'string', help: 'the run whose network to use (required): pretrain, finetune or distill' },
    out: { type: 'string', help: 'CSV file to write (required)' },
    ...trainFlags(['backend']),
  },
  async run(call) {
    const runId = numberOption(call, 'run', 0, 1, Number.MAX_SAFE_INTEGER);
    if (call.values.run === undefined || !Number.isInteger(runId)) throw new UserError('--run is required: the id of the run whose network to use', 'usage');
    const out = stringOption(call, 'out');
    if (!out) throw new UserError('--out is required: the CSV file to write', 'usage');
    const backend = backendFlag(call) ?? 'auto';
    const [dir, ...paths] = call.positionals;
    const result = await withProject(dir, (project) => embedOutsideFiles(project, runId, paths, out, backend), true);
    for (const problem of result.problems) call.io.err(`skipped ${problem.path}: ${problem.reason}\n`);
    call.io.out(`wrote ${result.features} features for ${result.count} image(s) to ${out}\n`);
  },
};

function optionalInteger(call: Invocation, name: string, min: number, max: number): number | undefined {
  if (call.values[name] === undefined) return undefined;
  const value = numberOption(call, name, 0, min, max);
  if (!Number.isInteger(value)) throw new UserError(`--${name} must be a whole number, got "${call.values[name]}"`, 'usage');
  return value;
}

const exportTrainerCommand: Command = {
  name: 'export-trainer',
  args: '<project>',
  summary: 'Write a folder that trains this project on a GPU cluster (PyTorch DistributedDataParallel, torchrun): manifest, pixels, train.py, README; import-weights takes its weights back.',
  options: {
    out: { type: 'string', help: 'a new or empty folder to write (required)' },
    run: { type: 'string', help: 'take the settings (network, epochs, batch, rates, seed) from this run and the runs it builds on; without it, --arch, --width and --size set the network' },
    ...trainFlags(['depth', 'width', 'imageSize', 'seed']),
    'copy-images': { type: 'boolean', help: 'copy the original image files into the folder as well' },
    json: { type: 'boolean', help: 'print the result as JSON' },
  },
  async run(call) {
    const outDir = stringOption(call, 'out');
    if (!outDir) throw new UserError('--out is required: the folder to write the trainer into', 'usage');
    const request = {
      outDir,
      copyImages: call.values['copy-images'] === true,
      runId: optionalInteger(call, 'run', 1, Number.MAX_SAFE_INTEGER),
      ...networkFlags(call),
      warn: (message: string) => call.io.err(`warning: ${message}\n`),
    };
    const [dir] = call.positionals;
    const exported = await withProject(dir, (project) => exportClusterTrainer(project, request));
    if (call.values.json) {
      printJson(call.io, exported);
      return;
    }
    call.io.out(
      `wrote the trainer for ${exported.images} images (${exported.labelled} labelled, ${exported.classes.length} classes; ResNet-${exported.network.depth} ×${exported.network.width}, ${exported.imageSize} px) to ${exported.dir}\n` +
        `next: torchrun --standalone --nproc_per_node=GPUS ${exported.dir}/train.py --out OUT (see ${exported.dir}/README.md), then contrast import-weights ${dir} OUT/finetune.safetensors\n`,
    );
  },
};

export const weightsCommands: Command[] = [importWeightsCommand, embed, exportTrainerCommand];
