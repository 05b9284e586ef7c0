"""The PyTorch reference's best arm at short budgets, alone: its labels-only network.

Runs the reference pipeline's own source with two changes, so that repeats of that arm cost M minutes
instead of 2M and differ by seed: its three SimCLR stage lines are skipped, and its fixed seed (1) is
replaced by SEED. Everything else (data, network, recipe, timing) is the reference's code as it is.
Stops with a message if the reference no longer has the lines this relies on.
  python3 labels_only.py REFERENCE DATA_DIR K MINUTES SEED
"""
import sys

reference, data_dir, labelled_per_class, minutes, seed = sys.argv[1:6]
source = open(reference).read().split('\n')
STAGE_LINES = ('net = Net(); res["pretrainSteps"]', 'res["finetuneSteps"]', 'student = Net();')
FIXED_SEED = 'torch.manual_seed(1); random.seed(1)'

stages = [line for line in source if line.startswith(STAGE_LINES)]
seeded = [i for i, line in enumerate(source) if FIXED_SEED in line]
if len(stages) != len(STAGE_LINES) or len(seeded) != 1:
    sys.exit(f'{reference}: expected its 3 stage lines and one fixed seed, found {len(stages)} and {len(seeded)}')
source[seeded[0]] = source[seeded[0]].replace(FIXED_SEED, f'torch.manual_seed({int(seed)}); random.seed({int(seed)})')
body = '\n'.join(line for line in source if line not in stages)

# The labels-only network trains for PRETRAIN + FINETUNE + DISTILL minutes: all M on the first.
sys.argv = [reference, data_dir, labelled_per_class, minutes, '0', '0']
exec(compile(body, reference, 'exec'), {'__name__': '__main__'})
