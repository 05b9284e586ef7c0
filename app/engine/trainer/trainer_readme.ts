/** The README of an exported trainer: what the folder holds and the exact commands to run it and bring the result back. */
import type { Stage } from '../../contract/domain.ts';
import type { TrainConfig } from '../stages/stage_config.ts';
import type { TrainerExport } from './export_trainer.ts';

function network(model: TrainConfig['model']): string {
  return `ResNet-${model.depth} ×${model.width}, ${model.imageSize} px`;
}

function stageLine(kind: Stage, config: TrainConfig): string {
  const epochs = config.epochs === null ? `the app's default epochs (the run had a ${config.minutes}-minute budget)` : `${config.epochs} epochs`;
  const batch = config.batchSize ?? 128;
  const rate = config.learningRate ?? `${{ pretrain: 0.075, finetune: 0.05, distill: 0.05 }[kind]}·√batch`;
  const mixup = config.mixup ? `, mixup α ${config.mixup}` : '';
  const extra = kind === 'pretrain' ? `, temperature ${config.temperature}` : kind === 'distill' ? `, τ ${config.tau}, label weight ${config.labelWeight}` : `${config.supervised ? ', from random weights (labels only)' : ''}${mixup}`;
  return `| ${kind} | ${network(config.model)} | ${epochs} | ${batch} | ${rate} | ${config.weightDecay} | ${config.seed}${extra} |`;
}

export function trainerReadme(exported: TrainerExport, stages: Record<Stage, TrainConfig>): string {
  const from = exported.fromRun ? `, with the settings of run ${exported.fromRun.id} (${exported.fromRun.kind}) and the runs it builds on` : '';
  return `# SimCLRv2 trainer for this project

Written by \`contrast export-trainer\`${from}. ${exported.images} images (${exported.withPixels} decoded, ${exported.labelled} labelled),
${exported.classes.length} classes (${exported.classes.join(', ')}).

| file | what it is |
| --- | --- |
| \`train.py\` | the training program: PyTorch DistributedDataParallel, launched with \`torchrun\` |
| \`manifest.json\` | every image (path relative to \`root\`, SHA-256, label, split, row in the pixels file), the classes in logit order, each stage's settings |
| \`pixels-${exported.imageSize}.u8\` | the app's own decoded pixels, uint8 RGB, ${exported.imageSize}×${exported.imageSize}×3 per image in manifest order: the program reads these, so it sees exactly what the app sees |
${exported.copiedImages ? `| \`images/\` | the ${exported.copiedImages} original files under their relative paths |\n` : ''}
The stages and their settings (the app's recipe; \`--epochs\` and \`--batch\` override them for every stage):

| stage | network | length | global batch | peak learning rate (LARS) | weight decay | seed |
| --- | --- | --- | --- | --- | --- | --- |
${(['pretrain', 'finetune', 'distill'] as Stage[]).map((kind) => stageLine(kind, stages[kind])).join('\n')}

Needs Python 3 with PyTorch (1.13 or newer) and NumPy. The batch is the global batch: each process
takes an equal share, and the contrastive loss uses every process's images as negatives.

## Run it

One GPU:

\`\`\`sh
torchrun --standalone --nproc_per_node=1 train.py --out output
\`\`\`

8 GPUs on one node:

\`\`\`sh
torchrun --standalone --nproc_per_node=8 train.py --out output
\`\`\`

Several nodes (here 4 × 8 GPUs): the same command on every node, with the address of one of them
and a folder every node can reach:

\`\`\`sh
torchrun --nnodes=4 --nproc_per_node=8 --rdzv_id=contrast-simclr --rdzv_backend=c10d \\
  --rdzv_endpoint=node1.example.org:29500 train.py --out /shared/contrast-output
\`\`\`

Slurm (one task per node, torchrun starting a process per GPU):

\`\`\`sh
#!/bin/bash
#SBATCH --nodes=4 --ntasks-per-node=1 --gpus-per-node=8 --cpus-per-task=32
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes="$SLURM_NNODES" --nproc_per_node=8 --rdzv_id="$SLURM_JOB_ID" \\
  --rdzv_backend=c10d --rdzv_endpoint="$head:29500" train.py --out /shared/contrast-output
\`\`\`

A short trial on the CPU (the gloo backend): \`torchrun --standalone --nproc_per_node=2 train.py --out trial --max-steps 5\`.
(Debian's PyTorch 1.13 under Python 3.11 cannot parse torchrun's default output settings: add \`--redirects 1 --tee 1\` after \`torchrun\`.)

\`--stages pretrain\` (or \`finetune,distill\`, …) runs some of the stages; a stage whose weights are already
in the output folder is not run again. Each stage checkpoints to \`OUT/checkpoints/<stage>.pt\` every epoch and every
\`--checkpoint-minutes\` (10); run the same command again after a crash, a pre-emption or a time limit and it
continues from there.

## Bring the result back

Each finished stage writes \`OUT/<stage>.safetensors\` (torchvision's key names, the network, classes and
settings in its metadata). On the machine with the project:

\`\`\`sh
contrast import-weights <project> output/pretrain.safetensors   # a pretrain run, to fine-tune in the app
contrast import-weights <project> output/finetune.safetensors   # a finetune run: predict, export, distil
contrast import-weights <project> output/distill.safetensors    # a distill run
\`\`\`

The classifiers also write \`OUT/<stage>-predictions.csv\`: every image's class probabilities (the mean over
the image and its mirror image, as the studio predicts), which \`contrast predict --run RUN\` on the imported
run reproduces.
`;
}
