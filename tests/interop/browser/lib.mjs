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
  await checkContrast(page);
  await checkReflow(page);
  await checkKeyboard(page);
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

// checkContrast(page): every element's own text meets WCAG 2.2 AA contrast
// against the background it is drawn on (4.5:1; 3:1 for large text), from
// the computed styles (backgrounds looked up through transparent ancestors).
export async function checkContrast(page) {
  const bad = await page.evaluate(() => {
    const rgb = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return { r, g, b, a };
    };
    const lum = ({ r, g, b }) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0) return c;
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const out = [];
    for (const el of document.querySelectorAll('body *')) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own || !el.getClientRects().length) continue;
      const cs = getComputedStyle(el);
      if (cs.visibility === 'hidden' || Number(cs.opacity) === 0) continue;
      // the skip link is off-screen until it has the keyboard's focus
      if (el.getBoundingClientRect().right < 0) continue;
      const fg = rgb(cs.color);
      const bg = background(el);
      if (!fg) continue;
      const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = parseFloat(cs.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(cs.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) {
        out.push(`${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}:1`);
      }
    }
    return out;
  });
  assert.deepEqual(bad, [], 'text contrast (WCAG AA)');
}

// checkReflow(page): at 320 CSS pixels wide (WCAG 1.4.10: a 1280-pixel
// window zoomed to 400%), the page needs no sideways scrolling; wide tables
// scroll inside their own box.
export async function checkReflow(page) {
  const size = page.viewportSize();
  await page.setViewportSize({ width: 320, height: 800 });
  const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.setViewportSize(size);
  assert.ok(over <= 1, `the page scrolls sideways by ${over}px at 320px wide`);
}

// checkKeyboard(page): the first Tab reaches the skip link, which shows
// itself when focused and leads to <main>; every link, button and control
// can take the keyboard's focus (no positive tabindex, none taken away).
export async function checkKeyboard(page) {
  // start the keyboard's walk at the top, as after loading the page (a
  // clicked button stays the starting point even once it loses focus)
  await page.evaluate(() => {
    document.activeElement?.blur();
    const top = document.createElement('span');
    top.tabIndex = -1;
    document.body.prepend(top);
    top.focus();
    top.remove();
    window.scrollTo(0, 0);
  });
  await page.keyboard.press('Tab');
  const skip = await page.evaluate(() => {
    const a = document.activeElement;
    const r = a.getBoundingClientRect();
    return { cls: a.className, href: a.getAttribute('href'), visible: r.left >= 0 && r.width > 0 };
  });
  assert.deepEqual(skip, { cls: 'skip', href: '#main', visible: true },
    'the first Tab reaches the visible skip link');
  await page.evaluate(() => document.activeElement?.blur());
  const untabbable = await page.evaluate(() =>
    [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, [tabindex]')]
      .filter((el) => el.tabIndex > 0 || (el.tabIndex < 0 && !el.disabled))
      .map((el) => el.outerHTML.slice(0, 100)));
  assert.deepEqual(untabbable, [], 'no positive tabindex, no control taken out of the tab order');
}

// switchLanguage(page, linkName): follows the banner's language link
// ('English' / '日本語') and waits until the same page is back in the other
// language (the URL ends where it started, so waiting for it is not enough).
export async function switchLanguage(page, linkName) {
  const path = new URL(page.url()).pathname;
  await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === path && r.request().isNavigationRequest()),
    page.getByRole('link', { name: linkName }).click(),
  ]);
  await page.waitForLoadState('load');
}
