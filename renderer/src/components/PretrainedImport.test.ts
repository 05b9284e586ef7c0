import { describe, expect, it } from 'vitest';
import { fireEvent, render } from '@testing-library/svelte';
import type { ImportedWeights, Input } from '../../../app/contract/operations.ts';
import PretrainedImport from './PretrainedImport.svelte';

const result: ImportedWeights = {
  runId: 4,
  kind: 'pretrain',
  name: 'R50 ImageNet',
  network: 'ResNet-50 ×1, 224 px, ImageNet mean/std input',
  layout: 'torchvision',
  format: 'pytorch',
  keys: { mapped: 265, ignored: 55, outside: 0 },
  headLayers: [],
  sha256: 'ab'.repeat(32),
};

describe('PretrainedImport', () => {
  it('sends the path with only the settings given, and says what was imported', async () => {
    const requests: Input<'weights.import'>[] = [];
    const imported: ImportedWeights[] = [];
    const { container, findByTestId } = render(PretrainedImport, {
      props: { importWeights: async (request: Input<'weights.import'>) => (requests.push(request), result), onImported: (r: ImportedWeights) => imported.push(r) },
    });
    const button = container.querySelector('[data-testid="import-weights"]') as HTMLButtonElement;
    expect(button.disabled).toBe(true);
    await fireEvent.input(container.querySelector('input[name="weights-path"]')!, { target: { value: '  /models/resnet50.pth ' } });
    await fireEvent.input(container.querySelector('input[name="weights-name"]')!, { target: { value: 'R50 ImageNet' } });
    expect(button.disabled).toBe(false);
    await fireEvent.submit(container.querySelector('form')!);
    expect(requests).toEqual([{ path: '/models/resnet50.pth', name: 'R50 ImageNet' }]);
    expect(imported).toEqual([result]);
    expect((await findByTestId('pretrained-result')).textContent!.replace(/\s+/g, ' ')).toMatch(/Imported as run #4: R50 ImageNet, ResNet-50 ×1, 224 px, ImageNet mean\/std input \(265 weights\)/);
  });

  it('shows nothing imported when the import fails (the caller shows the error)', async () => {
    const { container } = render(PretrainedImport, { props: { importWeights: async () => undefined, onImported: () => expect.unreachable() } });
    await fireEvent.input(container.querySelector('input[name="weights-path"]')!, { target: { value: '/models/vgg.pth' } });
    await fireEvent.input(container.querySelector('input[name="weights-size"]')!, { target: { value: '96' } });
    await fireEvent.submit(container.querySelector('form')!);
    expect(container.querySelector('[data-testid="pretrained-result"]')).toBeNull();
    expect((container.querySelector('[data-testid="import-weights"]') as HTMLButtonElement).textContent).toBe('Import');
  });
});
