import * as tf from '@tensorflow/tfjs';

/**
 * The studio's answer for a batch, worked out here without its code: the mean of the class
 * probabilities of each image and of its left-right mirror image.
 */
export function mirrorAveraged(probabilities: (images: tf.Tensor4D) => tf.Tensor, images: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => tf.div(tf.add(probabilities(images), probabilities(tf.reverse(images, 2))), 2) as tf.Tensor2D);
}
