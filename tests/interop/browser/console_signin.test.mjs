// Signing in to the consoles: the sign-in page sends staff back to the
// console they asked for; a resident without a role is refused; the
// language switch works on every console page.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { HUB, STAFF_PASSWORD, checkPage, launch, newPage, shot, signIn, switchLanguage } from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('an auditor signs in at /audit and comes back to it', async () => {
  const page = await newPage(browser);
  await signIn(page, 'auditor@kagawa.example', STAFF_PASSWORD, '/audit');
  const r = await page.goto(`${HUB}/audit`);
  assert.equal(r.status(), 200);
  await checkPage(page, r);
  await assert.doesNotReject(page.getByText('監査 一郎').first().waitFor());
  await shot(page, 'console-signin-audit');
  // the auditor has no operator role
  const admin = await page.goto(`${HUB}/admin`);
  assert.equal(admin.status(), 403);
  await checkPage(page, admin);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a resident without a role is refused the consoles', async () => {
  const page = await newPage(browser, { lang: 'en' });
  await page.goto(`${HUB}/audit`);
  await page.locator('#login').fill(process.env.RESIDENT_LOGIN);
  await page.locator('#password').fill(process.env.RESIDENT_PASSWORD);
  const [r] = await Promise.all([
    page.waitForResponse((x) => new URL(x.url()).pathname === '/audit'),
    page.locator('form button[type=submit]').first().click(),
  ]);
  assert.equal(r.status(), 403);
  await assert.doesNotReject(page.getByRole('alert').waitFor());
  await page.context().close();
});

test('the language switch changes the console to English and back', async () => {
  const page = await newPage(browser);
  await signIn(page, 'auditor@kagawa.example', STAFF_PASSWORD, '/audit');
  await switchLanguage(page, 'English');
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await switchLanguage(page, '日本語');
  assert.equal(await page.getAttribute('html', 'lang'), 'ja');
  await page.context().close();
});
