// The status page in a real browser: Debian's chromium, headless, driven by playwright-core, against the real
// daemon (dist/cli/main.js run --http) on temp directories (and, for the fleet section, a real etcd) over loopback. Real edits of real files; the page
// follows them from the event stream without a reload. The screenshots in docs/ are made here (README).
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_ETCD, startEtcd } from '../etcd/etcd-server.js';
import { publish } from '../etcd/release-writer.js';
import { world } from '../hotconf/fixtures.js';
import { ROOT, startHotconf } from './cli-helpers.js';

const CHROMIUM = process.env.HOTCONF_CHROMIUM ?? '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const DOCS = path.join(ROOT, 'docs');
const SECRET = 'hunter2-s3cr3t-value';
const NEW_SECRET = 'swordfish-n3w-s3cr3t';
const NESTED_SECRET = 'tok-9f8e7d6c5b4a';
const TOKEN = 'page-t0ken-0123456789abcdef';
/** Browser conditions: generous, a loaded machine may be slow; never a measure of speed. */
const WAIT = { timeout: 30_000 };

const app = (port: number, password = SECRET, host = 'app.internal') => `host: ${host}\npassword: ${password}\nport: ${port}\nnested:\n  token: ${NESTED_SECRET}\n`;
/** Text that would be markup if the page wrote what it is sent as HTML. */
const MARKUP = '"<img src=x class=injected>"';

// In CI the browser is installed (.ci/run): there a missing one fails, never skips.
describe.skipIf(!HAVE_CHROMIUM && process.env.CI === undefined)('the status page (headless chromium)', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    await mkdir(DOCS, { recursive: true });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });

  /** A page that records every body the server sent it (the event stream aside: it never ends). */
  async function openPage(): Promise<{ page: Page; bodies: string[]; close: () => Promise<void> }> {
    const context = await browser.newContext({ viewport: { width: 960, height: 720 } });
    const page = await context.newPage();
    const bodies: string[] = [];
    const pending: Promise<void>[] = [];
    page.on('response', (res) => {
      if (/text\/event-stream/.test(res.headers()['content-type'] ?? '')) return;
      pending.push(res.text().then((t) => void bodies.push(t), () => undefined));
    });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    // The CSP must not have to refuse anything the page itself does (no inline script or style, no other origin).
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) errors.push(m.text());
    });
    return {
      page,
      bodies,
      close: async () => {
        await Promise.all(pending);
        await context.close();
        expect(errors).toEqual([]);
      },
    };
  }

  it('renders the configs, shows a refused edit with its position and source lines without a reload, clears it when fixed, lists the new version, and never shows a secret', { timeout: 180_000 }, async () => {
    await using w = await world();
    await w.schema('app');
    await w.schema('db/primary');
    await w.config('app.yaml', app(8080));
    await w.config('db/primary.yaml', 'port: 5432\nhost: db-1.internal\n');
    await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0']);
    const url = String((await d.line((l) => l.msg === 'http listening', 'the API listening', 30_000)).url);

    const { page, bodies, close } = await openPage();
    await page.goto(url);
    await page.locator('tr[data-config="app"][data-state="ok"]').waitFor(WAIT);
    await page.locator('tr[data-config="db/primary"][data-state="ok"]').waitFor(WAIT);
    await expect.poll(() => page.locator('#live').textContent(), WAIT).toBe('live');
    await expect.poll(() => page.locator('#source').textContent(), WAIT).toBe(`files ${w.configDir}`);
    await expect.poll(() => page.locator('#started').textContent(), WAIT).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ/);
    await page.locator('#versions li[data-version="1"]').waitFor(WAIT);
    // A directory is no fleet (GET /v1/fleet answers 404): no fleet section.
    expect(await page.locator('#fleet-section').isHidden()).toBe(true);
    // A marker that a reload would wipe: every later step must find it.
    await page.evaluate(() => Object.assign(globalThis, { hotconfMarker: 42 }));
    await page.screenshot({ path: path.join(DOCS, 'status-page.png') });

    // An invalid edit (port over its maximum), with the secret on a line of the excerpt.
    await w.configAtomic('app.yaml', app(99_999, SECRET, MARKUP));
    const refused = page.locator('.config-error[data-config="app"]');
    await refused.waitFor(WAIT);
    const where = `${path.join(w.configDir, 'app.yaml')}:3:7: /port: must be <= 65535`;
    await expect.poll(() => refused.locator('.error-line').first().textContent(), WAIT).toBe(where);
    const excerpt = (await refused.locator('pre.excerpt').textContent()) ?? '';
    expect(excerpt).toContain('port: 99999');
    expect(excerpt).toContain(`host: ${MARKUP}`); // shown as text, never as markup
    expect(await page.locator('img.injected').count()).toBe(0);
    expect(excerpt).toContain('password: [REDACTED]');
    expect(excerpt).toContain('token: [REDACTED]');
    await expect.poll(() => page.locator('tr[data-config="app"]').getAttribute('data-state'), WAIT).toBe('error');
    expect(await page.locator('#error-count').textContent()).toBe('1');
    expect(await page.evaluate(() => (globalThis as { hotconfMarker?: number }).hotconfMarker)).toBe(42);
    await page.screenshot({ path: path.join(DOCS, 'status-page-refused.png'), fullPage: true });

    // Fixed (a new port and a new password): the error goes, version 2 comes with its diff, the secret redacted.
    await w.configAtomic('app.yaml', app(8081, NEW_SECRET));
    await expect.poll(() => page.locator('tr[data-config="app"]').getAttribute('data-state'), WAIT).toBe('ok');
    await page.locator('#errors-section').waitFor({ state: 'hidden', ...WAIT });
    const v2 = page.locator('#versions li[data-version="2"]');
    await v2.waitFor(WAIT);
    const diff = (await v2.textContent()) ?? '';
    expect(diff).toContain('~ /port: 8080 → 8081');
    expect(diff).toContain('~ /password: "[REDACTED]" → "[REDACTED]"');
    expect(await page.locator('tr[data-config="app"] td').nth(3).textContent()).toBe('2');
    expect(await page.evaluate(() => (globalThis as { hotconfMarker?: number }).hotconfMarker)).toBe(42);

    const shown = await page.content();
    await close();
    for (const text of [shown, ...bodies]) {
      for (const secret of [SECRET, NEW_SECRET, NESTED_SECRET]) expect(text).not.toContain(secret);
    }
    expect(bodies.some((b) => b.includes('"excerpts"'))).toBe(true);
  });

  it('with a token set, shows no data until the token is entered, and refuses a wrong one', { timeout: 120_000 }, async () => {
    await using w = await world();
    await w.schema('app');
    await w.config('app.yaml', app(8080));
    await using d = startHotconf(['run', '--config-dir', w.configDir, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0'], { env: { HOTCONF_HTTP_TOKEN: TOKEN } });
    const url = String((await d.line((l) => l.msg === 'http listening', 'the API listening', 30_000)).url);

    const { page, bodies, close } = await openPage();
    await page.goto(url);
    await page.locator('#login').waitFor(WAIT);
    expect(await page.locator('#main').isHidden()).toBe(true);
    expect(await page.locator('body').innerText()).not.toContain('app');
    expect(await page.locator('tr[data-config]').count()).toBe(0);

    await page.fill('#token', 'wrong-token-0123456789');
    await page.click('#login button');
    await expect.poll(() => page.locator('#login-error').textContent(), WAIT).toBe('The token was refused.');
    expect(await page.locator('#main').isHidden()).toBe(true);
    expect(await page.locator('tr[data-config]').count()).toBe(0);
    expect(await page.evaluate('sessionStorage.getItem("hotconf.token")')).toBeNull();
    await page.screenshot({ path: path.join(DOCS, 'status-page-token.png'), clip: { x: 0, y: 0, width: 960, height: 200 } });

    await page.fill('#token', TOKEN);
    await page.click('#login button');
    await page.locator('tr[data-config="app"][data-state="ok"]').waitFor(WAIT);
    expect(await page.locator('#login').isHidden()).toBe(true);
    await expect.poll(() => page.locator('#live').textContent(), WAIT).toBe('live');
    // Kept for the tab: a reload needs no token again; a new tab (another context) asks for it.
    await page.reload();
    await page.locator('tr[data-config="app"]').waitFor(WAIT);
    const other = await openPage();
    await other.page.goto(url);
    await other.page.locator('#login').waitFor(WAIT);
    expect(await other.page.locator('tr[data-config]').count()).toBe(0);
    await other.close();

    // Live with the token too: an edit arrives without a reload.
    await w.configAtomic('app.yaml', app(8082));
    await page.locator('#versions li[data-version="2"]').waitFor(WAIT);
    const shown = await page.content();
    await close();
    for (const text of [shown, ...bodies]) expect(text).not.toContain(SECRET);
  });
});

// The fleet section, against a real etcd and two real instances in release mode (test/etcd/fleet-writer.ts writes
// the releases as `hotconf push` does): shown only there, with each instance's release, and following a canary.
describe.skipIf((!HAVE_CHROMIUM || !HAVE_ETCD) && process.env.CI === undefined)('the status page of an etcd release fleet (headless chromium)', () => {
  it('shows the fleet (stable, canary, each instance and its release) and the served release, and follows a canary without a reload', { timeout: 180_000 }, async () => {
    await using etcd = await startEtcd();
    const client = etcd.client();
    await using w = await world();
    await w.schema('app');
    const prefix = '/status-page-fleet/';
    await publish(client, prefix, new Map([['app.yaml', app(8080)]]));
    const sidecar = async (id: string) => {
      const d = startHotconf(['run', '--etcd', etcd.url, '--etcd-prefix', prefix, '--schema-dir', w.schemaDir, '--http', '127.0.0.1:0', '--instance-id', id]);
      return Object.assign(d, { url: String((await d.line((l) => l.msg === 'http listening', `sidecar ${id}`, 30_000)).url) });
    };
    await using one = await sidecar('web-1');
    await using two = await sidecar('web-2');
    void two;

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    try {
      const page = await browser.newPage({ viewport: { width: 960, height: 720 } });
      await page.goto(one.url);
      await page.locator('#fleet-section').waitFor(WAIT);
      await page.locator('#fleet tr[data-instance="web-1"][data-release="1"]').waitFor(WAIT);
      await page.locator('#fleet tr[data-instance="web-2"][data-release="1"]').waitFor(WAIT);
      await expect.poll(() => page.locator('#fleet-releases').textContent(), WAIT).toBe('stable 1 · no canary · 2 instance(s)');
      await expect.poll(() => page.locator('#release').textContent(), WAIT).toBe('1');
      expect(await page.locator('#versions li[data-version="1"] strong').textContent()).toMatch(/ · release 1 · revision \d+$/);
      expect(await page.locator('#source').textContent()).toContain(prefix);
      await page.evaluate(() => Object.assign(globalThis, { hotconfMarker: 7 }));

      // Release 2 as a canary on web-2 only: the page of web-1 shows web-2 move, and web-1 stay.
      await publish(client, prefix, new Map([['app.yaml', app(8081)]]), { canary: { ids: ['web-2'] } });
      await page.locator('#fleet tr[data-instance="web-2"][data-release="2"]').waitFor(WAIT);
      await expect.poll(() => page.locator('#fleet-releases').textContent(), WAIT).toBe('stable 1 · canary 2 on web-2 · 2 instance(s)');
      expect(await page.locator('#fleet tr[data-instance="web-1"]').getAttribute('data-release')).toBe('1');
      expect(await page.locator('#release').textContent()).toBe('1');
      expect(await page.evaluate(() => (globalThis as { hotconfMarker?: number }).hotconfMarker)).toBe(7);
      await page.screenshot({ path: path.join(DOCS, 'status-page-fleet.png') });
      expect(await page.content()).not.toContain(SECRET);
    } finally {
      await browser.close();
    }
  });
});
