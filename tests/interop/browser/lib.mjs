// What the browser tests share: launching Debian's chromium through
// playwright-core, signing in through the hub's own page, screenshots, and
// a few checks every page must pass (the security headers, no inline
// script, a label on every control).
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const HUB = process.env.HUB_URL;
export const SHOTS = process.env.SCREENSHOT_DIR || 'screenshots';
export const STAFF_PASSWORD = process.env.STAFF_PASSWORD;
mkdirSync(SHOTS, { recursive: true });

// launch(): a headless chromium. Root in a container needs --no-sandbox.
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
}

// newPage(browser, opts): a page in a fresh context (its own cookies) that
// records every console error and every CSP violation the page reports, and
// accepts downloads. lang: 'ja' (default) or 'en' (Accept-Language).
export async function newPage(browser, { lang = 'ja', javaScript = true } = {}) {
  const context = await browser.newContext({
    locale: lang === 'en' ? 'en-US' : 'ja-JP',
    extraHTTPHeaders: { 'Accept-Language': lang === 'en' ? 'en' : 'ja' },
    acceptDownloads: true,
    javaScriptEnabled: javaScript,
    viewport: { width: 1280, height: 900 },
  });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (m) => {
    // a status the test asked for (403, 404) is checked by the test itself
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) {
      page.problems.push(`console: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  return page;
}

// signIn(page, login, password, next): through /login?next=NEXT (the way a
// console sends a person who is not signed in); ends on NEXT.
export async function signIn(page, login, password, next) {
  await page.goto(`${HUB}${next}`);
  assert.match(new URL(page.url()).pathname, /^\/login$/, `${next} sends to the sign-in page`);
  await page.getByLabel(/ログインID|Login|login/i).first().fill(login);
  await page.locator('#password').fill(password);
  await Promise.all([
    page.waitForURL((u) => u.pathname === next.split('?')[0]),
    page.locator('form button[type=submit]').first().click(),
  ]);
}

// shot(page, name): a full-page screenshot SCREENSHOT_DIR/NAME.png.
export async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

// checkPage(page, response): what every HTML page of the hub must do.
export async function checkPage(page, response) {
  const h = response.headers();
  const csp = h['content-security-policy'] || '';
  assert.match(csp, /frame-ancestors 'none'/, 'CSP forbids framing');
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, 'CSP allows no inline script or style');
  assert.match(h['cache-control'] || '', /no-store/, 'pages are not cached');
  const inline = await page.locator('script:not([src])').count();
  assert.equal(inline, 0, 'no inline <script>');
  const styled = await page.locator('[style]').count();
  assert.equal(styled, 0, 'no inline style attributes');
  // every form control a person fills in or chooses has a label
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') &&
        !el.getAttribute('aria-labelledby'))
      .map((el) => el.outerHTML.slice(0, 120)));
  assert.deepEqual(unlabelled, [], 'every control has a label');
  assert.equal(await page.locator('main').count(), 1, 'one <main>');
  assert.equal(await page.locator('h1').count(), 1, 'one <h1>');
  assert.ok((await page.getAttribute('html', 'lang'))?.length, '<html lang> is set');
}

// token(clientId, secret, scope): a client_credentials access token.
export async function token(clientId, secret, scope) {
  const r = await fetch(`${HUB}/oauth2/token`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', ...(scope ? { scope } : {}) }),
  });
  assert.equal(r.status, 200, `token for ${clientId}: ${await r.clone().text()}`);
  return (await r.json()).access_token;
}

// psql(sql): runs sql as the database's superuser (RENKEI_DB_SUPER); the
// output's text.
export async function psql(sql) {
  const { execFileSync } = await import('node:child_process');
  return execFileSync(process.env.PSQL || 'psql',
    [process.env.RENKEI_DB_SUPER, '-XqAt', '-v', 'ON_ERROR_STOP=1', '-c', sql],
    { encoding: 'utf8' }).trim();
}
