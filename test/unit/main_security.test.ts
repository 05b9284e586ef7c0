/** The desktop shell's security policy: window options, CSP, navigation and IPC sender checks. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { APP_ENTRY_URL, CONTENT_SECURITY_POLICY, isTrustedSender, navigationAction, secureWebPreferences } from '../../main/security.ts';

describe('secureWebPreferences', () => {
  test("follows Electron's checklist", () => {
    const prefs = secureWebPreferences('/app/dist/main/api.preload.cjs');
    assert.equal(prefs.preload, '/app/dist/main/api.preload.cjs');
    assert.equal(prefs.contextIsolation, true);
    assert.equal(prefs.sandbox, true);
    assert.equal(prefs.nodeIntegration, false);
    assert.equal(prefs.nodeIntegrationInWorker, false);
    assert.equal(prefs.nodeIntegrationInSubFrames, false);
    assert.equal(prefs.webSecurity, true);
    assert.equal(prefs.allowRunningInsecureContent, false);
    assert.equal(prefs.webviewTag, false);
    assert.equal(prefs.navigateOnDragDrop, false);
  });
});

describe('CONTENT_SECURITY_POLICY', () => {
  const directives = new Map(CONTENT_SECURITY_POLICY.split('; ').map((d) => [d.split(' ')[0], d.split(' ').slice(1)]));

  test('scripts and styles only from the app itself: no inline, no eval, no remote', () => {
    assert.deepEqual(directives.get('script-src'), ["'self'"]);
    assert.deepEqual(directives.get('style-src'), ["'self'"]);
    assert.ok(!CONTENT_SECURITY_POLICY.includes('unsafe-inline'));
    assert.deepEqual(directives.get('default-src'), ["'none'"]);
    assert.deepEqual(directives.get('object-src'), ["'none'"]);
    assert.deepEqual(directives.get('base-uri'), ["'none'"]);
    assert.deepEqual(directives.get('frame-ancestors'), ["'none'"]);
    assert.ok(!CONTENT_SECURITY_POLICY.includes('unsafe-eval'));
    assert.ok(!/https?:/.test(CONTENT_SECURITY_POLICY), 'no remote origin is trusted');
  });

  test('images from the app origin (thumbnails by id) and locally drawn canvases', () => {
    assert.deepEqual(directives.get('img-src'), ["'self'", 'data:', 'blob:']);
    assert.deepEqual(directives.get('connect-src'), ["'self'"]);
  });
});

describe('navigationAction', () => {
  test('in-app navigation stays, web links go to the browser, the rest is refused', () => {
    assert.equal(navigationAction(APP_ENTRY_URL, 'navigate'), 'allow');
    assert.equal(navigationAction('app://studio/index.html#/train', 'navigate'), 'allow');
    assert.equal(navigationAction('https://arxiv.org/abs/2006.10029', 'navigate'), 'open-external');
    assert.equal(navigationAction('http://example.com/', 'new-window'), 'open-external');
    for (const url of ['file:///etc/passwd', 'javascript:alert(1)', 'app://other/index.html', 'smb://host/share', 'data:text/html,hi', 'nonsense']) {
      assert.equal(navigationAction(url, 'navigate'), 'deny', url);
      assert.equal(navigationAction(url, 'new-window'), 'deny', url);
    }
  });

  test('never opens a second app window, and never hands credentials in a URL to the browser', () => {
    assert.equal(navigationAction(APP_ENTRY_URL, 'new-window'), 'deny');
    assert.equal(navigationAction('https://user:pass@example.com/', 'new-window'), 'deny');
  });
});

describe('isTrustedSender', () => {
  test('only the top frame of the app origin may call the core', () => {
    assert.equal(isTrustedSender('app://studio/index.html', true), true);
    assert.equal(isTrustedSender('app://studio/index.html', false), false, 'an iframe, even of the app');
    assert.equal(isTrustedSender('https://studio/index.html', true), false);
    assert.equal(isTrustedSender('app://studio.evil/index.html', true), false);
    assert.equal(isTrustedSender('file:///app/dist/renderer/index.html', true), false);
    assert.equal(isTrustedSender(undefined, true), false);
    assert.equal(isTrustedSender('', true), false);
  });
});
