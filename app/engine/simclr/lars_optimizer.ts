/**
 * LARS (You et al. 2017) as SimCLR uses it: momentum SGD where each weight tensor's step is
 * scaled by a trust ratio η·‖w‖/‖g + λw‖, so every layer moves by a similar relative amount
 * whatever its gradient scale. BatchNorm gamma/beta and biases skip both weight decay and
 * the trust ratio (they are small, and decaying them only hurts).
 *
 * Per variable, with learning rate α:
 *   g ← g + λw                       (not for excluded variables)
 *   α' ← α·η‖w‖/‖g‖ if both norms > 0, else α   (α' = α for excluded variables)
 *   v ← m·v + α'·g
 *   w ← w − v
 */
import * as tf from '@tensorflow/tfjs';

export interface LarsOptions {
  /** λ, e.g. 1e-6 … 1e-4 (SimCLRv2 pretrains with 1e-4 and fine-tunes with 0). */
  weightDecay: number;
  /** m; 0.9 when absent. */
  momentum?: number;
  /** η; 0.001 when absent. */
  trustCoefficient?: number;
}

/**
 * BN scale/shift, biases and the supervised classifier (`logits/*`), by their stable weight names.
 * The classifier starts near zero, so a trust ratio scaled by its own norm would barely move it:
 * SimCLR leaves its supervised head out of LARS for that reason.
 */
export function isExcludedFromLars(name: string): boolean {
  return /\/(gamma|beta|bias)$/.test(name) || name.startsWith('logits/');
}

export class LarsOptimizer {
  readonly weightDecay: number;
  readonly momentum: number;
  readonly trustCoefficient: number;
  /** Momentum slots keyed by the stable weight name, created on first update. */
  private readonly velocity = new Map<string, tf.Variable>();

  constructor(opts: LarsOptions) {
    if (!(opts.weightDecay >= 0)) throw new Error(`weight decay must be ≥ 0, got ${opts.weightDecay}`);
    this.weightDecay = opts.weightDecay;
    this.momentum = opts.momentum ?? 0.9;
    this.trustCoefficient = opts.trustCoefficient ?? 0.001;
  }

  /**
   * Updates every variable that has a gradient, both keyed by the same (stable) names.
   * Does not dispose `grads`; the caller owns them.
   */
  applyGradients(grads: Record<string, tf.Tensor>, variables: Record<string, tf.Variable>, learningRate: number): void {
    for (const [name, grad] of Object.entries(grads)) {
      const variable = variables[name];
      if (!variable) throw new Error(`gradient for unknown variable ${name}`);
      const velocity = this.slot(name, variable);
      tf.tidy(() => {
        const excluded = isExcludedFromLars(name);
        const direction = excluded || this.weightDecay === 0 ? grad : tf.add(grad, tf.mul(variable, this.weightDecay));
        const step = excluded ? tf.scalar(learningRate) : tf.mul(learningRate, this.trustRatio(variable, direction));
        velocity.assign(tf.add(tf.mul(velocity, this.momentum), tf.mul(step, direction)));
        variable.assign(tf.sub(variable, velocity));
      });
    }
  }

  private trustRatio(weight: tf.Tensor, direction: tf.Tensor): tf.Scalar {
    // Not tf.norm: its generic p-norm path costs an Abs and a Pow per variable.
    const weightNorm = tf.sqrt(tf.sum(tf.square(weight)));
    const directionNorm = tf.sqrt(tf.sum(tf.square(direction)));
    const bothPositive = tf.logicalAnd(tf.greater(weightNorm, 0), tf.greater(directionNorm, 0));
    // Guard the division itself: tf.where still evaluates the untaken branch.
    const ratio = tf.div(tf.mul(weightNorm, this.trustCoefficient), tf.maximum(directionNorm, 1e-30));
    return tf.where(bothPositive, ratio, tf.onesLike(ratio)) as tf.Scalar;
  }

  private slot(name: string, variable: tf.Variable): tf.Variable {
    let slot = this.velocity.get(name);
    if (!slot) {
      slot = tf.tidy(() => tf.variable(tf.zerosLike(variable), false));
      this.velocity.set(name, slot);
    }
    return slot;
  }

  /** Copies of the momentum slots, keyed by weight name, for a checkpoint. The caller disposes them. */
  getState(): Record<string, tf.Tensor> {
    const state: Record<string, tf.Tensor> = {};
    for (const [name, slot] of this.velocity) state[name] = tf.clone(slot);
    return state;
  }

  /** Restores slots saved by getState (values are copied; the caller keeps ownership of `state`). */
  setState(state: Record<string, tf.Tensor>): void {
    this.dispose();
    for (const [name, value] of Object.entries(state)) {
      this.velocity.set(name, tf.tidy(() => tf.variable(tf.clone(value), false)));
    }
  }

  dispose(): void {
    for (const slot of this.velocity.values()) slot.dispose();
    this.velocity.clear();
  }
}
