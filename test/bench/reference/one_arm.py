"""One arm of the PyTorch reference, alone and seeded: its labels-only network, or its SimCLR stages.

Runs the reference pipeline's own source with two changes, so that a repeat of one arm costs its M minutes
instead of the whole reference's 2M, and repeats differ by seed: the other arm's lines are skipped, and its
fixed seed (1) is replaced by SEED. Everything else (data, network, recipe, timing) is the reference's code
as it is. Stops with a message if the reference no longer has the lines this relies on.
  python3 one_arm.py labels REFERENCE DATA_DIR K MINUTES SEED
  python3 one_arm.py simclr REFERENCE DATA_DIR K PRETRAIN_MIN FINETUNE_MIN DISTILL_MIN SEED
"""
import sys

arm, reference, data_dir, labelled_per_class = sys.argv[1:5]
source = open(reference).read().split('\n')
SIMCLR_LINES = ('net = Net(); res["pretrainSteps"]', 'res["finetuneSteps"]', 'student = Net();')
LABELS_LINES = ('sup = Net(); res["supervisedSteps"]',)
FIXED_SEED = 'torch.manual_seed(1); random.seed(1)'

if arm == 'labels':
    minutes, seed = sys.argv[5:7]
    skipped_prefixes = SIMCLR_LINES
    # The labels-only network trains for PRETRAIN + FINETUNE + DISTILL minutes: all M on the first.
    stage_minutes = [minutes, '0', '0']
elif arm == 'simclr':
    *stage_minutes, seed = sys.argv[5:9]
    skipped_prefixes = LABELS_LINES
else:
    sys.exit(f'unknown arm {arm!r}: expected labels or simclr')

skipped = [line for line in source if line.startswith(skipped_prefixes)]
seeded = [i for i, line in enumerate(source) if FIXED_SEED in line]
if len(skipped) != len(skipped_prefixes) or len(seeded) != 1:
    sys.exit(f'{reference}: expected {len(skipped_prefixes)} lines starting {skipped_prefixes} and one fixed seed, found {len(skipped)} and {len(seeded)}')
source[seeded[0]] = source[seeded[0]].replace(FIXED_SEED, f'torch.manual_seed({int(seed)}); random.seed({int(seed)})')
body = '\n'.join(line for line in source if line not in skipped)

sys.argv = [reference, data_dir, labelled_per_class, *stage_minutes]
exec(compile(body, reference, 'exec'), {'__name__': '__main__'})
