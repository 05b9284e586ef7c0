// jsdom has no layout engine: give elements a fixed size and a ResizeObserver that reports it once,
// so components that measure themselves (the virtual grid) lay out as in an 800×600 window.
export const TEST_WIDTH = 800;
export const TEST_HEIGHT = 600;

Object.defineProperty(HTMLElement.prototype, 'clientWidth', { configurable: true, get: () => TEST_WIDTH });
Object.defineProperty(HTMLElement.prototype, 'clientHeight', { configurable: true, get: () => TEST_HEIGHT });

class FixedResizeObserver {
  constructor(private readonly callback: ResizeObserverCallback) {}
  observe(target: Element) {
    const size = [{ inlineSize: TEST_WIDTH, blockSize: TEST_HEIGHT }];
    const entry = { target, contentRect: { width: TEST_WIDTH, height: TEST_HEIGHT }, borderBoxSize: size, contentBoxSize: size };
    queueMicrotask(() => this.callback([entry as unknown as ResizeObserverEntry], this as unknown as ResizeObserver));
  }
  unobserve() {}
  disconnect() {}
}
globalThis.ResizeObserver = FixedResizeObserver as unknown as typeof ResizeObserver;
