/** The README.md of an export folder: what the model is, how to feed it, and where it came from. */
import type { BundleLabels } from './bundle.ts';
import { ONNX_OPSET } from './onnx_export.ts';
import { ONNX_OUTPUT } from './preprocessing.ts';

function percent(value: number | null): string {
  return value === null ? 'not measured (no validation images)' : `${(100 * value).toFixed(1)}%`;
}

function architectureName(labels: BundleLabels): string {
  const a = labels.architecture;
  return `ResNet-${a.depth}, width ${a.width}${a.sk ? ', selective kernels' : ''}, ${a.imageSize} px input`;
}

function pythonExample(labels: BundleLabels): string {
  const size = labels.input.preprocessing.size;
  return [
    'import json',
    'import numpy as np',
    'import onnxruntime as ort',
    'from PIL import Image, ImageOps',
    '',
    'classes = json.load(open("labels.json"))["classes"]',
    'image = ImageOps.exif_transpose(Image.open("photo.jpg")).convert("RGB")',
    `image = ImageOps.fit(image, (${size}, ${size}), Image.Resampling.LANCZOS)  # centred square`,
    `images = np.asarray(image, dtype=np.float32)[np.newaxis] / 255.0  # [1, ${size}, ${size}, 3], RGB in [0, 1]`,
    'session = ort.InferenceSession("model.onnx")',
    `probabilities = session.run(["${ONNX_OUTPUT}"], {"${labels.input.name}": images})[0][0]`,
    'best = int(probabilities.argmax())',
    'print(classes[best], float(probabilities[best]))',
  ].join('\n');
}

function javascriptExample(labels: BundleLabels): string {
  const size = labels.input.preprocessing.size;
  return [
    "import fs from 'node:fs';",
    "import sharp from 'sharp';",
    "import * as ort from 'onnxruntime-node';",
    '',
    "const { classes } = JSON.parse(fs.readFileSync('labels.json', 'utf8'));",
    `const pixels = await sharp('photo.jpg').rotate().resize(${size}, ${size}, { fit: 'cover' }).removeAlpha().toColourspace('srgb').raw().toBuffer();`,
    `const ${labels.input.name} = new ort.Tensor('float32', Float32Array.from(pixels, (v) => v / 255), [1, ${size}, ${size}, 3]);`,
    "const session = await ort.InferenceSession.create('model.onnx');",
    `const { ${ONNX_OUTPUT} } = await session.run({ ${labels.input.name} });`,
    `const best = ${ONNX_OUTPUT}.data.indexOf(Math.max(...${ONNX_OUTPUT}.data));`,
    `console.log(classes[best], ${ONNX_OUTPUT}.data[best]);`,
  ].join('\n');
}

export function bundleReadme(labels: BundleLabels): string {
  const p = labels.input.preprocessing;
  const size = p.size;
  return `# Image classifier: run ${labels.runId} (${labels.kind})

Exported from Contrast Studio on ${labels.exportedAt}.

| | |
| --- | --- |
| run | ${labels.runId} (${labels.kind}), finished ${labels.trainedAt ?? 'unknown'} |
| network | ${architectureName(labels)} |
| validation accuracy | ${percent(labels.metrics.valAccuracy)}${labels.metrics.valImages === null ? '' : ` on ${labels.metrics.valImages} images`} |
| classes | ${labels.classes.length} |

## Files

- \`model.onnx\`: ONNX, opset ${ONNX_OPSET}. Input \`${labels.input.name}\`: float32 \`[batch, ${size}, ${size}, 3]\` (NHWC, RGB in [0, 1]).
  Output \`${ONNX_OUTPUT}\`: float32 \`[batch, ${labels.classes.length}]\`, summing to 1: the mean of the network's probabilities for each
  image and for its left-right mirror image, as the studio predicts. Its metadata holds the classes and the preprocessing.
- \`model.json\` + \`weights.bin\`: the same network for TensorFlow.js (\`tf.loadLayersModel\`), same input and output, for one
  view: to get the studio's probabilities, average \`model.predict(x)\` and \`model.predict(tf.reverse(x, 2))\`.
- \`labels.json\`: class names in output order, the input and preprocessing, and the run's metrics.

## Classes, in output order

${labels.classes.map((name, i) => `${i}. ${name}`).join('\n')}

## Preprocessing

${p.steps.map((step, i) => `${i + 1}. ${step}`).join('\n')}

So the input is \`pixel / 255\` (scale ${p.scale.toPrecision(6)}, mean ${JSON.stringify(p.mean)}, std ${JSON.stringify(p.std)}),
shape \`[batch, ${size}, ${size}, 3]\`. Contrast Studio resizes with sharp (libvips, \`fit: 'cover'\`, Lanczos-3): the
JavaScript example below does exactly that. Other libraries (Pillow in the Python example) resample a little
differently, so their probabilities can differ slightly from the studio's.

## Python (onnxruntime)

\`pip install onnxruntime pillow numpy\`, then:

\`\`\`python
${pythonExample(labels)}
\`\`\`

## JavaScript (onnxruntime-node)

\`npm install onnxruntime-node sharp\`, then as \`predict.mjs\`:

\`\`\`js
${javascriptExample(labels)}
\`\`\`
`;
}
