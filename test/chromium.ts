// Headless Chromium for the browser tests: Debian's chromium driven by playwright-core (no
// browser download). CI installs chromium; where it is absent the tests are skipped.
import { existsSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** The `skip` option of a test that needs Chromium. */
export const noChromium: string | false = !existsSync(CHROMIUM) && 'chromium is not installed';

/** Launch headless Chromium with no GPU, no sandbox and no background network traffic. */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * Collect a page's uncaught errors (and, unless `console` is false, its console errors) into
 * `errors`, each prefixed with where it came from.
 */
export function collectPageErrors(page: Page, errors: string[], opts: { console?: boolean } = {}): void {
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  if (opts.console !== false) page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
}
