// The resident's side, in a real browser: kanonji's watch-over app (a
// public client, PKCE) asks hanako to sign in and consent to
// exchange.mimamori; with her consent the app reads her own watch-over
// record from takamatsu across towns; on her account page she sees the app
// and the access, revokes her consent, and the app's next exchange request
// is denied.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { HUB, checkPage, launch, newPage, shot } from './lib.mjs';

const APP = process.env.MIMAMORI_APP_ID;
const REDIRECT = process.env.MIMAMORI_REDIRECT;
const LOGIN = process.env.RESIDENT_LOGIN;
const PASSWORD = process.env.RESIDENT_PASSWORD;

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const b64url = (buf) => buf.toString('base64url');

// watchOver(token): the app's cross-town request for the resident's own record.
async function watchOver(accessToken) {
  const r = await fetch(`${HUB}/v2/entities?type=WatchOverStatus&options=keyValues`, {
    headers: {
      Authorization: `Bearer ${accessToken}`,
      'Fiware-Service': 'takamatsu',
      'Renkei-Purpose': 'elderly-watch-over',
    },
  });
  return { status: r.status, body: await r.json() };
}

test('a resident consents, the app reads her record, she revokes, the app is denied', async () => {
  const page = await newPage(browser);
  // nothing listens at the app's loopback redirect: the test reads the
  // request the browser makes there (as the app would receive it)
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const state = b64url(randomBytes(16));
  const q = new URLSearchParams({
    response_type: 'code', client_id: APP, redirect_uri: REDIRECT,
    scope: 'openid ngsi.read exchange.mimamori', state, nonce: b64url(randomBytes(16)),
    prompt: 'consent', // ops/demo-traffic consented for her already: ask again
    code_challenge: challenge, code_challenge_method: 'S256',
  });
  await page.goto(`${HUB}/oauth2/authorize?${q}`);

  // sign in
  assert.equal(new URL(page.url()).pathname, '/login');
  const login = await page.reload();
  await checkPage(page, login);
  await shot(page, 'resident-login');
  await page.getByLabel('ログインID').fill(LOGIN);
  await page.getByLabel('パスワード').fill(PASSWORD);
  await Promise.all([page.waitForURL((u) => u.pathname === '/consent'),
    page.getByRole('button', { name: /サインイン/ }).click()]);

  // consent: the app and the exchange scope are named in plain words
  const consent = await page.reload();
  await checkPage(page, consent);
  await assert.doesNotReject(page.getByText('見守りアプリ').first().waitFor());
  const box = page.locator('input[type=checkbox][value="exchange.mimamori"]');
  assert.equal(await box.count(), 1, 'the exchange scope is a checkbox of its own');
  await box.check();
  await shot(page, 'resident-consent');
  const [back] = await Promise.all([
    page.waitForEvent('requestfailed', (r) => r.url().startsWith(REDIRECT)),
    page.getByRole('button', { name: '許可する', exact: true }).click()]);
  await page.waitForURL((u) => u.protocol === 'chrome-error:');
  const callback = new URL(back.url());
  assert.equal(callback.searchParams.get('state'), state);
  const code = callback.searchParams.get('code');
  assert.ok(code, `a code in ${callback}`);

  // the app redeems the code (public client: PKCE, no secret)
  const tr = await fetch(`${HUB}/oauth2/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT,
      client_id: APP, code_verifier: verifier }),
  });
  assert.equal(tr.status, 200, await tr.clone().text());
  const { access_token: at, scope } = await tr.json();
  assert.match(scope, /exchange\.mimamori/);

  // with consent: her own record, and only hers
  const first = await watchOver(at);
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.deepEqual(first.body.map((e) => e.refResident), ['TK-000123']);

  // her account page: the app, and the transfer in her access history
  const acct = await page.goto(`${HUB}/account`);
  assert.equal(acct.status(), 200);
  await checkPage(page, acct);
  const card = page.locator('.card', { hasText: '見守りアプリ' });
  await assert.doesNotReject(card.waitFor());
  const rows = page.locator('table.records tbody tr');
  assert.ok(await rows.count() >= 1, 'the access history has the transfer');
  const firstRow = await rows.first().innerText();
  assert.match(firstRow, /elderly-watch-over/);
  // towns and the app by name, not by id
  assert.match(firstRow, /観音寺市/);
  assert.match(firstRow, /高松市/);
  assert.match(firstRow, /見守りアプリ/);
  // the exchange scope in words, not as a code
  assert.match(await card.innerText(), /ほかの市町村にあるあなたの記録の利用/);
  await shot(page, 'resident-account');

  // revoke: a form POST with its CSRF token, and a notice
  await Promise.all([page.waitForURL((u) => u.pathname === '/account'),
    card.getByRole('button').click()]);
  await assert.doesNotReject(page.getByRole('status').waitFor());
  assert.equal(await page.locator('.card', { hasText: '見守りアプリ' }).count(), 0,
    'the app is gone from her list');
  await shot(page, 'resident-revoked');

  // the app's next exchange request is denied: the tokens issued under the
  // grant died with it (RFC 9700 §4.14: revocation reaches access tokens)
  const second = await watchOver(at);
  assert.equal(second.status, 401, JSON.stringify(second.body));
  assert.match(second.body.description, /consent was revoked/);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the account page works in English and without JavaScript', async () => {
  const page = await newPage(browser, { lang: 'en', javaScript: false });
  await page.goto(`${HUB}/login`);
  await page.getByLabel('Login ID').fill(LOGIN);
  await page.getByLabel('Password').fill(PASSWORD);
  await Promise.all([page.waitForURL((u) => u.pathname === '/account'),
    page.getByRole('button', { name: /Sign in/ }).click()]);
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await assert.doesNotReject(page.getByRole('heading', { level: 2 }).first().waitFor());
  // the skip link leads to the main content
  assert.equal(await page.locator('a.skip').getAttribute('href'), '#main');
  assert.equal(await page.locator('main#main').count(), 1);
  await shot(page, 'resident-account-en');
  await page.context().close();
});
