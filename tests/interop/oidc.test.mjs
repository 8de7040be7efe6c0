// OpenID Connect as a relying party sees it: openid-client runs the code
// flow (PKCE S256, state, nonce) against the running hub, and a small
// cookie-keeping fetch plays the resident's browser on the hub's sign-in
// and consent pages (no real browser: it reads the hidden form fields from
// the HTML and posts the forms).  Redirects to an app's redirect URI are
// never fetched: their URL is handed to openid-client, which checks iss
// (RFC 9207), state, nonce and the ID token's signature against the JWKS.
// Covered: the code flow, userinfo by scope, refresh rotation and reuse
// detection, revocation, token exchange (RFC 8693), pairwise subjects,
// single sign-on, prompt=none, public clients, RP-initiated logout,
// consent revocation on the account page, and the pages' language.
// Run by run.sh against a running hub; the tests run in order and share
// what earlier ones obtained (hanako's browser, her tokens).
//
// Environment (run.sh sets it):
//   HUB_URL                       the hub, http://127.0.0.1:PORT; also the issuer
//   RESIDENT_LOGIN, RESIDENT_PASSWORD, RESIDENT_NAME, RESIDENT_EMAIL
//                                 a resident of takamatsu (hanako)
//   RESIDENT2_LOGIN, RESIDENT2_PASSWORD, RESIDENT2_NAME
//                                 another resident of takamatsu (taro)
//   TAKA_APP_ID, TAKA_APP_SECRET, TAKA_APP_NAME
//       confidential app of takamatsu (client_secret_basic): grants
//       authorization_code, refresh_token and token exchange; scopes "openid
//       profile email ngsi.read ngsi.write"; redirect URI TAKA_CB, post-logout
//       redirect URI TAKA_BYE, audience MARU_RESOURCE
//   MARU_APP_ID, MARU_APP_SECRET, MARU_APP_NAME
//       confidential app of marugame: authorization_code, refresh_token;
//       "openid profile email"; redirect URI MARU_CB
//   PUBLIC_APP_ID   public app of takamatsu (no secret): authorization_code,
//       refresh_token; "openid profile"; redirect URI PUBLIC_CB
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import * as client from 'openid-client';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} must be set (tests/interop/run.sh sets it)`);
  return v;
}

const HUB_URL = env('HUB_URL');
const HUB_ORIGIN = new URL(HUB_URL).origin;
const HANAKO = {
  login: env('RESIDENT_LOGIN'),
  password: env('RESIDENT_PASSWORD'),
  name: env('RESIDENT_NAME'),
  email: env('RESIDENT_EMAIL'),
};
const TARO = {
  login: env('RESIDENT2_LOGIN'),
  password: env('RESIDENT2_PASSWORD'),
  name: env('RESIDENT2_NAME'),
};
const TAKA_APP_ID = env('TAKA_APP_ID');
const TAKA_APP_SECRET = env('TAKA_APP_SECRET');
const TAKA_APP_NAME = env('TAKA_APP_NAME');
const MARU_APP_ID = env('MARU_APP_ID');
const MARU_APP_SECRET = env('MARU_APP_SECRET');
const MARU_APP_NAME = env('MARU_APP_NAME');
const PUBLIC_APP_ID = env('PUBLIC_APP_ID');

// What run.sh registered.
const TAKA_CB = 'https://app.takamatsu.example/cb';
const TAKA_BYE = 'https://app.takamatsu.example/bye';
const MARU_CB = 'https://app.marugame.example/cb';
const PUBLIC_CB = 'https://app.takamatsu.example/native-cb';
const MARU_RESOURCE = 'https://api.marugame.example/ngsi';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const TAKA_SCOPE = 'openid profile email ngsi.read';

// Plain HTTP on loopback; ID tokens are checked against the JWKS too.
const OPTIONS = { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] };
const JWKS = createRemoteJWKSet(new URL(`${HUB_URL}/oauth2/jwks`));

// ------------------------------------------------------------- helpers

function need(value, what) {
  assert.ok(value, `${what} is missing: an earlier test failed`);
  return value;
}

async function rejection(promise, what) {
  let settled = false;
  try {
    await promise;
    settled = true;
  } catch (err) {
    return err;
  }
  assert.ok(!settled, `${what}: expected a failure, but it succeeded`);
  return undefined;
}

function explain(err) {
  return `${err?.name}: ${err?.message}` +
    (err?.error ? ` (error ${err.error}, ${err.error_description})` : '') +
    (err?.code ? ` [${err.code}]` : '');
}

// An OAuth error response of the token endpoint (RFC 6749 §5.2).
async function assertTokenError(promise, error, what) {
  const err = await rejection(promise, what);
  assert.ok(err instanceof client.ResponseBodyError,
    `${what}: expected ResponseBodyError, got ${explain(err)}`);
  assert.equal(err.status, 400, `${what}: HTTP status`);
  assert.equal(err.error, error, `${what}: error code (${err.error_description})`);
}

// An error the hub sent back to the app's redirect URI, as openid-client
// reports it after checking iss and state.
async function assertAuthorizationError(promise, error, what) {
  const err = await rejection(promise, what);
  assert.ok(err instanceof client.AuthorizationResponseError,
    `${what}: expected AuthorizationResponseError, got ${explain(err)}`);
  assert.equal(err.error, error, `${what}: error code (${err.error_description})`);
}

// A resident's browser: cookies of the hub, kept as the hub sets them.
class Browser {
  constructor(acceptLanguage) {
    this.cookies = new Map();
    this.acceptLanguage = acceptLanguage;
  }

  // fetch on the hub without following redirects; takes the cookies set.
  async fetch(url, init = {}) {
    const u = new URL(url, HUB_URL);
    assert.equal(u.origin, HUB_ORIGIN, `the browser only ever fetches the hub, not ${u}`);
    const headers = new Headers(init.headers);
    if (this.cookies.size) {
      headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    }
    if (this.acceptLanguage) headers.set('accept-language', this.acceptLanguage);
    const res = await fetch(u, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (attrs.some((a) => /^max-age=0$/i.test(a)) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  async post(url, fields) {
    const body = new URLSearchParams();
    for (const [k, v] of fields) body.append(k, v);
    return this.fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
  }
}

function unescapeHtml(s) {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

// The value of the hidden input `name` of a page (the first one).
function hidden(html, name, what) {
  const m = html.match(new RegExp(`<input type="hidden" name="${name}" value="([^"]*)"`));
  assert.ok(m, `${what}: the page has a hidden ${name} field`);
  return unescapeHtml(m[1]);
}

function htmlLang(html) {
  return html.match(/<html lang="([^"]*)"/)?.[1];
}

// The scopes a consent page offers: the values of its scope inputs.
function offeredScopes(html) {
  return [...html.matchAll(/<input type="(?:checkbox|hidden)"[^>]*name="scope" value="([^"]*)"/g)]
    .map((m) => m[1]);
}

async function location(res, what) {
  assert.equal(res.status, 303, `${what}: 303 See Other (got ${res.status}: ${await res.text()})`);
  const loc = res.headers.get('location');
  assert.ok(loc, `${what}: a Location header`);
  return new URL(loc, HUB_URL);
}

async function page(res, status, what) {
  const html = await res.text();
  assert.equal(res.status, status, `${what}: HTTP status (body: ${html.slice(0, 400)})`);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html; charset=utf-8/i,
    `${what}: an HTML page`);
  return html;
}

// A fresh authorization request of app `cfg` for redirect URI `redirectUri`.
async function authRequest(cfg, redirectUri, params = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(cfg, {
    redirect_uri: redirectUri,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...params,
  });
  return { url, verifier, state, nonce };
}

// The browser goes to the authorization URL and follows the hub's
// redirects, signing in with `signIn` ({login, password}) on the sign-in
// page and answering the consent page with `consent` ({scopes: the ones to
// tick (default: every offered one), decision}), until the hub sends it to
// the app.  Returns that URL, the pages met in order ('login', 'consent')
// and the language of each (<html lang>).  A page it was given nothing
// for fails the test.
async function drive(browser, url, { signIn, consent, what }) {
  const pages = [];
  const langs = [];
  let res = await browser.fetch(url);
  for (let hops = 0; hops < 10; hops++) {
    const to = await location(res, `${what}, step ${hops + 1}`);
    if (to.origin !== HUB_ORIGIN) return { callback: to, pages, langs };
    if (to.pathname === '/login') {
      assert.ok(signIn, `${what}: the hub asked to sign in, which the test did not expect`);
      const html = await page(await browser.fetch(to), 200, `${what}: sign-in page`);
      pages.push('login');
      langs.push(htmlLang(html));
      res = await browser.post('/login', [
        ['csrf', hidden(html, 'csrf', `${what}: sign-in page`)],
        ['r', hidden(html, 'r', `${what}: sign-in page`)],
        ['login', signIn.login],
        ['password', signIn.password],
      ]);
    } else if (to.pathname === '/consent') {
      assert.ok(consent, `${what}: the hub asked for consent, which the test did not expect`);
      const html = await page(await browser.fetch(to), 200, `${what}: consent page`);
      pages.push('consent');
      langs.push(htmlLang(html));
      const fields = [
        ['csrf', hidden(html, 'csrf', `${what}: consent page`)],
        ['r', hidden(html, 'r', `${what}: consent page`)],
        ['decision', consent.decision ?? 'allow'],
      ];
      for (const s of consent.scopes ?? offeredScopes(html)) fields.push(['scope', s]);
      res = await browser.post('/consent', fields);
    } else {
      assert.fail(`${what}: unexpected redirect to ${to}`);
    }
  }
  assert.fail(`${what}: more than 10 redirects`);
}

// The authorization request runs in the browser, then the app redeems the
// code; returns the token response.  pages: the pages the resident must
// see on the way; lang: the language they must be in.
async function codeFlow(cfg, redirectUri, browser,
  { params, signIn, consent, pages, lang, what }) {
  const req = await authRequest(cfg, redirectUri, params);
  const r = await drive(browser, req.url, { signIn, consent, what });
  if (pages) assert.deepEqual(r.pages, pages, `${what}: the pages the resident saw`);
  if (lang) {
    assert.deepEqual(r.langs, r.pages.map(() => lang), `${what}: <html lang> of the pages`);
  }
  assert.equal(`${r.callback.origin}${r.callback.pathname}`, redirectUri,
    `${what}: back at the app's redirect URI`);
  return client.authorizationCodeGrant(cfg, r.callback, {
    pkceCodeVerifier: req.verifier,
    expectedState: req.state,
    expectedNonce: req.nonce,
  });
}

function bearer(token) {
  return { Authorization: `Bearer ${token}` };
}

// The status and OAuth error of the userinfo endpoint for `token`.
async function userinfoStatus(token) {
  const res = await fetch(`${HUB_URL}/oauth2/userinfo`, { headers: bearer(token) });
  const body = await res.json().catch(() => ({}));
  return { status: res.status, error: body.error, challenge: res.headers.get('www-authenticate') };
}

// The grant of app `appName` on the account page: the hidden fields of its
// revoke form.
function revokeForm(html, appName) {
  const card = html.split('<div class="card">').slice(1)
    .find((c) => c.includes(`<h3>${appName}</h3>`));
  if (!card) return undefined;
  return { csrf: hidden(card, 'csrf', appName), grantId: hidden(card, 'grant_id', appName) };
}

// ------------------------------------------------- what the tests share

let taka; // hanako's Takamatsu app (confidential)
let maru; // marugame's app (confidential)
let pub; // the public app
const hanako = new Browser();
let hanakoTaka; // her first token response at the Takamatsu app
let hanakoTakaSub;
let hanakoMaru; // her token response at the Marugame app
let taroTaka; // taro's token response at the Takamatsu app

// ------------------------------------------------------------------ tests

test('discovery: OpenID Provider metadata through openid-client', async () => {
  taka = await client.discovery(new URL(HUB_URL), TAKA_APP_ID, TAKA_APP_SECRET,
    client.ClientSecretBasic(TAKA_APP_SECRET), OPTIONS);
  maru = await client.discovery(new URL(HUB_URL), MARU_APP_ID, MARU_APP_SECRET,
    client.ClientSecretBasic(MARU_APP_SECRET), OPTIONS);
  pub = await client.discovery(new URL(HUB_URL), PUBLIC_APP_ID, undefined, client.None(), OPTIONS);
  const m = taka.serverMetadata();
  assert.equal(m.issuer, HUB_URL);
  assert.equal(m.authorization_endpoint, `${HUB_URL}/oauth2/authorize`);
  assert.equal(m.token_endpoint, `${HUB_URL}/oauth2/token`);
  assert.equal(m.userinfo_endpoint, `${HUB_URL}/oauth2/userinfo`);
  assert.equal(m.end_session_endpoint, `${HUB_URL}/logout`);
  assert.equal(m.jwks_uri, `${HUB_URL}/oauth2/jwks`);
  assert.deepEqual(m.response_types_supported, ['code']);
  assert.deepEqual(m.code_challenge_methods_supported, ['S256']);
  assert.deepEqual(m.subject_types_supported, ['pairwise']);
  assert.equal(m.authorization_response_iss_parameter_supported, true);
  for (const g of ['authorization_code', 'refresh_token', TOKEN_EXCHANGE]) {
    assert.ok(m.grant_types_supported?.includes(g), `grant_types_supported includes ${g}`);
  }
  assert.ok(m.token_endpoint_auth_methods_supported?.includes('none'),
    'token_endpoint_auth_methods_supported includes none (public clients)');
  for (const s of ['openid', 'profile', 'email']) {
    assert.ok(m.scopes_supported?.includes(s), `scopes_supported includes ${s}`);
  }
  assert.ok(m.id_token_signing_alg_values_supported?.includes('ES256'),
    'ID tokens signed with ES256');
});

test('the sign-in page: Japanese by default, English with ui_locales=en or Accept-Language: en',
  async () => {
    const cfg = need(taka, 'the discovered configuration');
    const cases = [
      { what: 'no language asked for', params: {}, acceptLanguage: undefined, lang: 'ja',
        heading: 'サインイン' },
      { what: 'ui_locales=en', params: { ui_locales: 'en' }, acceptLanguage: 'ja', lang: 'en',
        heading: 'Sign in' },
      { what: 'Accept-Language: en', params: {}, acceptLanguage: 'en-GB,en;q=0.8', lang: 'en',
        heading: 'Sign in' },
    ];
    for (const c of cases) {
      const browser = new Browser(c.acceptLanguage);
      const req = await authRequest(cfg, TAKA_CB, { scope: TAKA_SCOPE, ...c.params });
      const to = await location(await browser.fetch(req.url), `${c.what}: authorize`);
      assert.equal(to.pathname, '/login', `${c.what}: no session, so to the sign-in page`);
      const res = await browser.fetch(to);
      const html = await page(res, 200, `${c.what}: sign-in page`);
      assert.equal(htmlLang(html), c.lang, `${c.what}: <html lang>`);
      assert.match(html, new RegExp(`<h1>${c.heading}</h1>`), `${c.what}: the heading's language`);
      assert.ok(html.includes(TAKA_APP_NAME), `${c.what}: the page names the app`);
      assert.ok(!/<script/i.test(html), `${c.what}: no script on the page`);
      assert.match(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/,
        `${c.what}: the page may not be framed (CSP)`);
      assert.ok(!/unsafe-inline/.test(res.headers.get('content-security-policy') ?? ''),
        `${c.what}: CSP without unsafe-inline`);
      assert.equal(res.headers.get('x-frame-options'), 'DENY', `${c.what}: X-Frame-Options`);
      assert.match(res.headers.get('cache-control') ?? '', /no-store/, `${c.what}: not cached`);
    }
  });

test('code flow: sign-in, consent, code, tokens (confidential app of takamatsu)', async () => {
  const cfg = need(taka, 'the discovered configuration');
  const req = await authRequest(cfg, TAKA_CB, { scope: TAKA_SCOPE });
  let to = await location(await hanako.fetch(req.url), 'authorize without a session');
  assert.equal(to.pathname, '/login', 'no session: to the sign-in page');
  let html = await page(await hanako.fetch(to), 200, 'sign-in page');

  // A wrong password: the form again, with an error, and no session.
  let res = await hanako.post('/login', [
    ['csrf', hidden(html, 'csrf', 'sign-in page')], ['r', hidden(html, 'r', 'sign-in page')],
    ['login', HANAKO.login], ['password', `${HANAKO.password}x`]]);
  html = await page(res, 401, 'a wrong password');
  assert.ok(html.includes('ログインIDまたはパスワードが正しくありません'),
    'a wrong password: the page says the login ID or password is not correct');
  assert.ok(!hanako.cookies.has('renkei_sid'), 'a wrong password: no session cookie');

  // A form without the CSRF token is refused, and so is one posted from
  // another site.
  res = await hanako.post('/login', [['r', hidden(html, 'r', 'sign-in page')],
    ['login', HANAKO.login], ['password', HANAKO.password]]);
  await page(res, 403, 'a sign-in without the csrf field');
  res = await hanako.fetch('/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
    body: new URLSearchParams([
      ['csrf', hidden(html, 'csrf', 'sign-in page')], ['r', hidden(html, 'r', 'sign-in page')],
      ['login', HANAKO.login], ['password', HANAKO.password]]),
  });
  await page(res, 403, 'a sign-in form posted from another site (Origin)');
  assert.ok(!hanako.cookies.has('renkei_sid'), 'refused sign-ins: no session cookie');

  res = await hanako.post('/login', [
    ['csrf', hidden(html, 'csrf', 'sign-in page')], ['r', hidden(html, 'r', 'sign-in page')],
    ['login', HANAKO.login], ['password', HANAKO.password]]);
  const cookie = res.headers.getSetCookie().find((c) => c.startsWith('renkei_sid='));
  assert.ok(cookie, 'signed in: a renkei_sid cookie');
  assert.match(cookie, /;\s*HttpOnly/i, 'the session cookie is HttpOnly');
  assert.match(cookie, /;\s*SameSite=Lax/i, 'the session cookie is SameSite=Lax');
  assert.match(cookie, /;\s*Path=\//i, 'the session cookie is for the whole hub');
  to = await location(res, 'signed in');
  assert.equal(to.pathname, '/consent', 'first time at this app: to the consent page');

  html = await page(await hanako.fetch(to), 200, 'consent page');
  assert.equal(htmlLang(html), 'ja', 'consent page in Japanese');
  assert.ok(html.includes(TAKA_APP_NAME), 'the consent page names the app');
  assert.ok(html.includes('高松市'), 'the consent page names the town providing the app');
  assert.deepEqual(offeredScopes(html).sort(), TAKA_SCOPE.split(' ').sort(),
    'the consent page asks exactly for the requested scopes');
  res = await hanako.post('/consent', [
    ['csrf', hidden(html, 'csrf', 'consent page')], ['r', hidden(html, 'r', 'consent page')],
    ['decision', 'allow'], ...TAKA_SCOPE.split(' ').map((s) => ['scope', s])]);
  const callback = await location(res, 'consented');
  assert.equal(`${callback.origin}${callback.pathname}`, TAKA_CB, 'back at the app');
  assert.equal(callback.searchParams.get('iss'), HUB_URL, 'the response names the issuer (RFC 9207)');
  assert.equal(callback.searchParams.get('state'), req.state, 'the state comes back');

  const t = await client.authorizationCodeGrant(cfg, callback, {
    pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce });
  hanakoTaka = t;
  assert.equal(t.token_type, 'bearer');
  assert.equal(t.scope, TAKA_SCOPE, 'the scope consented');
  assert.equal(typeof t.refresh_token, 'string', 'a refresh token (the app has the grant)');
  assert.ok(Number.isInteger(t.expires_in) && t.expires_in > 0, 'expires_in');

  const id = t.claims();
  assert.equal(id.iss, HUB_URL);
  assert.equal(id.aud, TAKA_APP_ID);
  assert.equal(id.azp, TAKA_APP_ID);
  assert.equal(id.nonce, req.nonce);
  assert.deepEqual(id.amr, ['pwd']);
  assert.equal(id.acr, '1');
  assert.equal(typeof id.sid, 'string');
  assert.ok(Math.abs(id.auth_time - Date.now() / 1000) < 60, 'auth_time is the sign-in just now');
  assert.match(id.sub, /^[A-Za-z0-9_-]{43}$/, 'sub is an opaque pairwise identifier');
  assert.notEqual(id.sub, HANAKO.login, 'sub is not the login');
  hanakoTakaSub = id.sub;
  const atHash = createHash('sha256').update(t.access_token).digest().subarray(0, 16)
    .toString('base64url');
  assert.equal(id.at_hash, atHash, 'at_hash is the left half of the access token\'s SHA-256');
  // jose agrees with openid-client about the ID token's signature.
  const { protectedHeader: idh } = await jwtVerify(t.id_token, JWKS,
    { issuer: HUB_URL, audience: TAKA_APP_ID, algorithms: ['ES256', 'RS256'] });
  assert.notEqual(idh.typ, 'at+jwt', 'an ID token is not typed as an access token');

  const { payload: at, protectedHeader } = await jwtVerify(t.access_token, JWKS,
    { issuer: HUB_URL, audience: HUB_URL, typ: 'at+jwt', algorithms: ['ES256', 'RS256'] });
  assert.equal(protectedHeader.typ, 'at+jwt');
  assert.equal(at.sub, id.sub, 'the access token names the same pairwise subject');
  assert.equal(at.client_id, TAKA_APP_ID);
  assert.equal(at.tenant, 'takamatsu');
  assert.equal(at.scope, TAKA_SCOPE);
});

test('the code is single-use, and bound to its PKCE verifier and client', async () => {
  const cfg = need(taka, 'the discovered configuration');
  need(hanakoTaka, 'hanako\'s sign-in');
  // Signed in and consented: prompt=none gives a code at once.
  let req = await authRequest(cfg, TAKA_CB, { scope: TAKA_SCOPE, prompt: 'none' });
  let r = await drive(hanako, req.url, { what: 'prompt=none with a session and consent' });
  assert.deepEqual(r.pages, [], 'prompt=none: no page at all');
  assert.equal(`${r.callback.origin}${r.callback.pathname}`, TAKA_CB);
  assert.ok(r.callback.searchParams.get('code'), 'prompt=none: a code');

  // The wrong verifier: refused (the app's secret alone is not enough).
  await assertTokenError(client.authorizationCodeGrant(cfg, r.callback, {
    pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: req.state,
    expectedNonce: req.nonce }), 'invalid_grant', 'a code with the wrong code_verifier');

  req = await authRequest(cfg, TAKA_CB, { scope: TAKA_SCOPE, prompt: 'none' });
  r = await drive(hanako, req.url, { what: 'prompt=none, again' });
  assert.deepEqual(r.pages, [], 'prompt=none: no page at all');
  // Another app cannot redeem it.
  await assertTokenError(client.authorizationCodeGrant(need(maru, 'maru'), r.callback, {
    pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce }),
  'invalid_grant', 'a code of the Takamatsu app redeemed by the Marugame app');
  const t = await client.authorizationCodeGrant(cfg, r.callback, {
    pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce });
  assert.equal(t.claims().sub, hanakoTakaSub, 'the same resident, the same sub');
  assert.equal(t.claims().auth_time, hanakoTaka.claims().auth_time,
    'no new sign-in: the same auth_time');
  assert.equal((await userinfoStatus(t.access_token)).status, 200, 'the new access token works');

  // Redeemed twice: refused, and what the first redemption gave is revoked
  // (RFC 9700 §4.5).
  await assertTokenError(client.authorizationCodeGrant(cfg, r.callback, {
    pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce }),
  'invalid_grant', 'the same code a second time');
  const after = await userinfoStatus(t.access_token);
  assert.equal(after.status, 401, 'the access token of a replayed code is revoked');
  assert.equal(after.error, 'invalid_token');
  await assertTokenError(client.refreshTokenGrant(cfg, t.refresh_token), 'invalid_grant',
    'the refresh token of a replayed code');
});

test('userinfo: the claims the consented scopes allow', async () => {
  const cfg = need(taka, 'the discovered configuration');
  const t = need(hanakoTaka, 'hanako\'s tokens');
  const info = await client.fetchUserInfo(cfg, t.access_token, hanakoTakaSub);
  assert.equal(info.sub, hanakoTakaSub);
  assert.equal(info.name, HANAKO.name, 'profile: name');
  assert.equal(info.preferred_username, HANAKO.login, 'profile: preferred_username');
  assert.equal(info.email, HANAKO.email, 'email: email');
  assert.equal(typeof info.email_verified, 'boolean', 'email: email_verified');

  // The token in a form body (RFC 6750 §2.2) works the same.
  const res = await fetch(`${HUB_URL}/oauth2/userinfo`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ access_token: t.access_token }),
  });
  assert.equal(res.status, 200, 'userinfo POST with the token in the form');
  assert.equal((await res.json()).sub, hanakoTakaSub);

  const none = await fetch(`${HUB_URL}/oauth2/userinfo`);
  assert.equal(none.status, 401, 'userinfo without a token');
  assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/i, 'a Bearer challenge');
  await none.body?.cancel();
  const forged = `${t.access_token.slice(0, -4)}AAAA`;
  assert.equal((await userinfoStatus(forged)).status, 401, 'userinfo with a forged signature');
});

test('token exchange (RFC 8693): the app acts for the resident at another town\'s API',
  async () => {
    const cfg = need(taka, 'the discovered configuration');
    const t = need(hanakoTaka, 'hanako\'s tokens');
    const exchange = (params) => client.genericGrantRequest(cfg, TOKEN_EXCHANGE, {
      subject_token: t.access_token, subject_token_type: ACCESS_TOKEN_TYPE, ...params });

    const x = await exchange({ resource: MARU_RESOURCE, scope: 'ngsi.read' });
    assert.equal(x.issued_token_type, ACCESS_TOKEN_TYPE);
    assert.equal(x.token_type, 'bearer');
    assert.equal(x.scope, 'ngsi.read');
    assert.equal(x.refresh_token, undefined, 'no refresh token from an exchange');
    const { payload } = await jwtVerify(x.access_token, JWKS, {
      issuer: HUB_URL, audience: MARU_RESOURCE, typ: 'at+jwt', algorithms: ['ES256', 'RS256'] });
    assert.equal(payload.aud, MARU_RESOURCE, 'aud: the other town\'s API only');
    assert.deepEqual(payload.act?.sub, TAKA_APP_ID, 'act.sub: the app acting for the resident');
    assert.equal(payload.scope, 'ngsi.read');
    assert.equal(payload.client_id, TAKA_APP_ID);
    assert.match(payload.sub, /^[A-Za-z0-9_-]{43}$/, 'sub: a pairwise identifier');
    assert.notEqual(payload.sub, hanakoTakaSub,
      'the API\'s host is another sector: it sees another sub');
    assert.ok(payload.exp > payload.iat);

    // The same again: the same pairwise sub for that API.
    const y = await exchange({ audience: MARU_RESOURCE, scope: 'ngsi.read' });
    assert.equal(decodeJwt(y.access_token).sub, payload.sub, 'a stable sub for the API');
    assert.notEqual(decodeJwt(y.access_token).jti, payload.jti, 'a new token each time');

    // A token for another audience is no good at the hub's userinfo.
    assert.equal((await userinfoStatus(x.access_token)).status, 401,
      'the exchanged token is not accepted by the hub\'s userinfo');

    await assertTokenError(exchange({ resource: 'https://api.kagawa.example/ngsi', scope: 'ngsi.read' }),
      'invalid_target', 'an audience the app is not allowed');
    await assertTokenError(exchange({ scope: 'ngsi.read' }), 'invalid_target',
      'no resource or audience at all');
    await assertTokenError(exchange({ resource: MARU_RESOURCE, scope: 'ngsi.write' }),
      'invalid_scope', 'a scope the resident never consented to (ngsi.write)');
    await assertTokenError(exchange({ resource: MARU_RESOURCE, scope: 'ngsi.read ngsi.write' }),
      'invalid_scope', 'a scope partly beyond the consent');
    await assertTokenError(client.genericGrantRequest(cfg, TOKEN_EXCHANGE, {
      subject_token: `${t.access_token.slice(0, -4)}AAAA`, subject_token_type: ACCESS_TOKEN_TYPE,
      resource: MARU_RESOURCE, scope: 'ngsi.read' }), 'invalid_grant', 'a forged subject token');

    // hanako narrows her consent (prompt=consent, ngsi.read unticked): her
    // earlier token names ngsi.read, which her consent no longer covers, so
    // the hub refuses that token at once, here as the subject of an exchange.
    const narrowed = await codeFlow(cfg, TAKA_CB, hanako, {
      params: { scope: 'openid ngsi.read', prompt: 'consent' }, consent: { scopes: ['openid'] },
      pages: ['consent'], what: 'hanako unticks ngsi.read' });
    assert.equal(narrowed.scope, 'openid', 'only what hanako left ticked');
    await assertTokenError(exchange({ resource: MARU_RESOURCE, scope: 'ngsi.read' }),
      'invalid_grant', 'ngsi.read after hanako withdrew it: the subject token is no longer good');
    // ... and allows it again, for the tests that follow.
    await codeFlow(cfg, TAKA_CB, hanako, {
      params: { scope: TAKA_SCOPE, prompt: 'consent' }, consent: {}, pages: ['consent'],
      what: 'hanako allows everything again' });
    assert.equal((await exchange({ resource: MARU_RESOURCE, scope: 'ngsi.read' })).scope,
      'ngsi.read', 'consented again: the exchange works again');
  });

test('single sign-on and pairwise subjects: the Marugame app, same browser', async () => {
  const cfg = need(maru, 'the discovered configuration');
  need(hanakoTaka, 'hanako\'s sign-in');
  // Signed in but not consented yet: prompt=none cannot ask.
  const req = await authRequest(cfg, MARU_CB, { scope: 'openid profile email', prompt: 'none' });
  const r = await drive(hanako, req.url, { what: 'prompt=none without consent' });
  assert.deepEqual(r.pages, [], 'prompt=none shows no page');
  await assertAuthorizationError(client.authorizationCodeGrant(cfg, r.callback, {
    pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce }),
  'consent_required', 'prompt=none without consent');

  // The session from the Takamatsu app: no sign-in, only the consent page;
  // hanako leaves email unticked.
  const t = await codeFlow(cfg, MARU_CB, hanako, {
    params: { scope: 'openid profile email' }, consent: { scopes: ['openid', 'profile'] },
    pages: ['consent'], lang: 'ja', what: 'the Marugame app with the session' });
  hanakoMaru = t;
  assert.equal(t.scope, 'openid profile', 'only what hanako ticked');
  const id = t.claims();
  assert.equal(id.aud, MARU_APP_ID);
  assert.equal(id.sid, hanakoTaka.claims().sid, 'the same sign-in session');
  assert.equal(id.auth_time, hanakoTaka.claims().auth_time, 'no new sign-in');
  assert.notEqual(id.sub, hanakoTakaSub,
    'another town\'s app on another host sees another sub for the same resident');
  const at = decodeJwt(t.access_token);
  assert.equal(at.tenant, 'marugame', 'the Marugame app\'s tokens are marugame\'s');
  const info = await client.fetchUserInfo(cfg, t.access_token, id.sub);
  assert.equal(info.name, HANAKO.name, 'the same resident behind both subs');
  assert.equal(info.email, undefined, 'email was not consented: no email');
  assert.equal(info.email_verified, undefined, 'email was not consented: no email_verified');

  // The Takamatsu app cannot exchange a token the Marugame app was given.
  await assertTokenError(client.genericGrantRequest(need(taka, 'taka'), TOKEN_EXCHANGE, {
    subject_token: t.access_token, subject_token_type: ACCESS_TOKEN_TYPE,
    resource: MARU_RESOURCE, scope: 'openid' }), 'invalid_grant',
  'the Takamatsu app exchanging hanako\'s token of the Marugame app');
});

test('a public client completes the flow with PKCE alone', async () => {
  const cfg = need(pub, 'the discovered configuration');
  need(hanakoTaka, 'hanako\'s sign-in');
  assert.equal(cfg.clientMetadata().client_secret, undefined, 'the public app has no secret');

  // "Don't allow" sends the browser back with access_denied.
  let req = await authRequest(cfg, PUBLIC_CB, { scope: 'openid profile' });
  let r = await drive(hanako, req.url, { consent: { decision: 'deny' }, what: 'consent denied' });
  assert.deepEqual(r.pages, ['consent']);
  await assertAuthorizationError(client.authorizationCodeGrant(cfg, r.callback, {
    pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce }),
  'access_denied', 'the resident denied consent');

  req = await authRequest(cfg, PUBLIC_CB, { scope: 'openid profile' });
  r = await drive(hanako, req.url, { consent: {}, what: 'the public app' });
  assert.deepEqual(r.pages, ['consent'], 'signed in already: only the consent page');
  await assertTokenError(client.authorizationCodeGrant(cfg, r.callback, {
    pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: req.state,
    expectedNonce: req.nonce }), 'invalid_grant', 'the public app with the wrong code_verifier');

  const t = await codeFlow(cfg, PUBLIC_CB, hanako, {
    params: { scope: 'openid profile', prompt: 'none' }, pages: [], what: 'the public app again' });
  assert.equal(t.scope, 'openid profile');
  assert.equal(t.claims().aud, PUBLIC_APP_ID);
  assert.equal(t.claims().sub, hanakoTakaSub,
    'an app on the same host (app.takamatsu.example) sees the same sub');
  assert.equal((await client.fetchUserInfo(cfg, t.access_token, t.claims().sub)).name, HANAKO.name);
  const again = await client.refreshTokenGrant(cfg, t.refresh_token);
  assert.notEqual(again.refresh_token, t.refresh_token, 'the public app\'s refresh token rotates');
  assert.equal(again.claims()?.sub, hanakoTakaSub);
});

test('refresh: rotation, narrowing, and reuse detection', async () => {
  const cfg = need(taka, 'the discovered configuration');
  const t0 = need(hanakoTaka, 'hanako\'s tokens');

  const t1 = await client.refreshTokenGrant(cfg, t0.refresh_token);
  assert.equal(typeof t1.refresh_token, 'string', 'a new refresh token');
  assert.notEqual(t1.refresh_token, t0.refresh_token, 'rotation: a different refresh token');
  assert.notEqual(t1.access_token, t0.access_token, 'a new access token');
  assert.equal(t1.scope, TAKA_SCOPE);
  assert.equal(t1.claims()?.sub, hanakoTakaSub, 'a new ID token for the same subject');
  assert.equal(t1.claims()?.auth_time, t0.claims().auth_time, 'the original sign-in time');
  assert.equal((await client.fetchUserInfo(cfg, t1.access_token, hanakoTakaSub)).email,
    HANAKO.email, 'the refreshed access token works at userinfo');

  // A narrower scope for one access token; the refresh token keeps the rest.
  const t2 = await client.refreshTokenGrant(cfg, t1.refresh_token, { scope: 'ngsi.read' });
  assert.equal(t2.scope, 'ngsi.read');
  assert.equal(decodeJwt(t2.access_token).scope, 'ngsi.read');
  assert.equal(t2.id_token, undefined, 'no openid, no ID token');
  const narrow = await userinfoStatus(t2.access_token);
  assert.equal(narrow.status, 403, 'userinfo with a token without openid');
  assert.equal(narrow.error, 'insufficient_scope');
  await assertTokenError(client.refreshTokenGrant(cfg, t2.refresh_token, { scope: 'ngsi.write' }),
    'invalid_scope', 'a refresh asking for a scope never granted');
  const t3 = await client.refreshTokenGrant(cfg, t2.refresh_token);
  assert.equal(t3.scope, TAKA_SCOPE, 'the refresh token still carries the whole consent');

  // Another app cannot use it.
  await assertTokenError(client.refreshTokenGrant(need(maru, 'maru'), t3.refresh_token),
    'invalid_grant', 'hanako\'s Takamatsu refresh token used by the Marugame app');

  // A rotated token presented again: refused, and its whole family with it.
  await assertTokenError(client.refreshTokenGrant(cfg, t0.refresh_token), 'invalid_grant',
    'the first, rotated refresh token used again');
  await assertTokenError(client.refreshTokenGrant(cfg, t3.refresh_token), 'invalid_grant',
    'the newest refresh token after the reuse (reuse detection revokes the family)');
  assert.equal((await userinfoStatus(t3.access_token)).status, 401,
    'the access token issued with the newest refresh token is revoked too');
  assert.equal((await userinfoStatus(t0.access_token)).status, 401,
    'and so is the family\'s first access token');
});

test('revocation (RFC 7009) of a refresh token', async () => {
  const cfg = need(taka, 'the discovered configuration');
  need(hanakoTaka, 'hanako\'s sign-in');
  const t = await codeFlow(cfg, TAKA_CB, hanako, {
    params: { scope: TAKA_SCOPE, prompt: 'none' }, pages: [], what: 'a new code, no page' });
  const before = await client.tokenIntrospection(cfg, t.refresh_token);
  assert.equal(before.active, true, 'the refresh token is active');
  assert.equal(before.token_type, 'refresh_token');
  assert.equal(before.client_id, TAKA_APP_ID);

  assert.equal(await client.tokenRevocation(cfg, t.refresh_token,
    { token_type_hint: 'refresh_token' }), undefined);
  // RFC 7009 §2.1: the access token of the same grant goes with it.
  assert.equal((await userinfoStatus(t.access_token)).status, 401,
    'the access token issued with the revoked refresh token');
  assert.deepEqual(await client.tokenIntrospection(cfg, t.refresh_token), { active: false },
    'revoked: inactive');
  await assertTokenError(client.refreshTokenGrant(cfg, t.refresh_token), 'invalid_grant',
    'refreshing with a revoked refresh token');
});

test('the account page: revoking an app\'s consent stops its tokens at once', async () => {
  const cfg = need(taka, 'the discovered configuration');
  const taro = new Browser();
  // taro reads English: every page of his flow is in English.
  const t = await codeFlow(cfg, TAKA_CB, taro, {
    params: { scope: TAKA_SCOPE, ui_locales: 'en' }, signIn: TARO, consent: {},
    pages: ['login', 'consent'], lang: 'en', what: 'taro at the Takamatsu app' });
  taroTaka = t;
  assert.notEqual(t.claims().sub, hanakoTakaSub, 'another resident, another sub');
  assert.equal((await client.fetchUserInfo(cfg, t.access_token, t.claims().sub)).name, TARO.name);

  let html = await page(await taro.fetch('/account'), 200, 'taro\'s account page');
  assert.ok(html.includes(TARO.name), 'the account page shows the resident\'s name');
  const form = revokeForm(html, TAKA_APP_NAME);
  assert.ok(form, 'the account page lists the Takamatsu app with a revoke form');
  assert.ok(!revokeForm(html, MARU_APP_NAME), 'taro never used the Marugame app');

  // Another resident's grant is not taro's to revoke.
  const hanakoPage = await page(await hanako.fetch('/account'), 200, 'hanako\'s account page');
  const hanakoMaruForm = revokeForm(hanakoPage, MARU_APP_NAME);
  assert.ok(hanakoMaruForm, 'hanako\'s account page lists the Marugame app');
  let res = await taro.post('/account/revoke',
    [['csrf', form.csrf], ['grant_id', hanakoMaruForm.grantId]]);
  await page(res, 404, 'taro revoking hanako\'s grant');
  const hm = need(hanakoMaru, 'hanako\'s Marugame tokens');
  assert.equal((await userinfoStatus(hm.access_token)).status, 200,
    'hanako\'s Marugame token still works');

  // Without the CSRF token: refused, nothing revoked.
  res = await taro.post('/account/revoke', [['grant_id', form.grantId]]);
  await page(res, 403, 'a revoke without the csrf field');
  assert.equal((await userinfoStatus(t.access_token)).status, 200, 'nothing was revoked');

  const start = Date.now();
  res = await taro.post('/account/revoke', [['csrf', form.csrf], ['grant_id', form.grantId]]);
  const to = await location(res, 'revoke');
  assert.equal(`${to.pathname}${to.search}`, '/account?notice=revoked');
  const info = await userinfoStatus(t.access_token);
  await assertTokenError(client.refreshTokenGrant(cfg, t.refresh_token), 'invalid_grant',
    'the app\'s refresh token after the consent was revoked');
  const elapsed = Date.now() - start;
  assert.equal(info.status, 401, 'the app\'s access token fails at userinfo after the revocation');
  assert.equal(info.error, 'invalid_token');
  assert.ok(elapsed < 1000, `both refused within the same second (${elapsed} ms)`);

  html = await page(await taro.fetch(to), 200, 'the account page after revoking');
  assert.ok(html.includes('アプリへの許可を取り消しました。'), 'the page confirms the revocation');
  assert.ok(!revokeForm(html, TAKA_APP_NAME), 'the app is no longer listed');

  // Consent is gone: the app must ask again (signed in still, so no sign-in).
  const again = await authRequest(cfg, TAKA_CB, { scope: TAKA_SCOPE, prompt: 'none' });
  const r = await drive(taro, again.url, { what: 'prompt=none after revoking' });
  await assertAuthorizationError(client.authorizationCodeGrant(cfg, r.callback, {
    pkceCodeVerifier: again.verifier, expectedState: again.state, expectedNonce: again.nonce }),
  'consent_required', 'prompt=none after the consent was revoked');
});

test('RP-initiated logout: back to the app with state, then sign-in again', async () => {
  const cfg = need(taka, 'the discovered configuration');
  const t = need(hanakoTaka, 'hanako\'s tokens');
  const state = client.randomState();

  // A post-logout URI that was not registered: a page, no redirect.
  const stranger = new Browser();
  let res = await stranger.fetch(client.buildEndSessionUrl(cfg, {
    id_token_hint: t.id_token, post_logout_redirect_uri: 'https://evil.example/bye', state }));
  await page(res, 400, 'an unregistered post_logout_redirect_uri');

  // Without proof that the app of this session asks (no ID token, or one of
  // another session): a confirmation page, and the session stays.
  res = await hanako.fetch(client.buildEndSessionUrl(cfg, {
    post_logout_redirect_uri: TAKA_BYE, state }));
  let html = await page(res, 200, 'logout without id_token_hint');
  assert.match(html, /<form method="post" action="\/logout"/, 'a confirmation form');
  assert.equal(htmlLang(html), 'ja');
  const taroId = need(taroTaka, 'taro\'s tokens').id_token;
  res = await hanako.fetch(client.buildEndSessionUrl(cfg, {
    id_token_hint: taroId, post_logout_redirect_uri: TAKA_BYE, state }));
  html = await page(res, 200, 'logout with the ID token of another session');
  assert.match(html, /<form method="post" action="\/logout"/, 'a confirmation form');
  html = await page(await hanako.fetch('/account'), 200, 'the account page after those');
  assert.ok(html.includes(HANAKO.name), 'hanako is still signed in');

  const sessionCookie = need(hanako.cookies.get('renkei_sid'), 'hanako\'s session cookie');
  res = await hanako.fetch(client.buildEndSessionUrl(cfg, {
    id_token_hint: t.id_token, post_logout_redirect_uri: TAKA_BYE, state }));
  const to = await location(res, 'logout with id_token_hint');
  assert.equal(`${to.origin}${to.pathname}`, TAKA_BYE, 'back at the post-logout redirect URI');
  assert.equal(to.searchParams.get('state'), state, 'with the state');
  assert.ok(!hanako.cookies.has('renkei_sid'), 'the session cookie is cleared');

  // The browser has no session: the sign-in page again.
  let req = await authRequest(cfg, TAKA_CB, { scope: TAKA_SCOPE });
  let loc = await location(await hanako.fetch(req.url), 'authorize after logout');
  assert.equal(loc.pathname, '/login', 'after logout: the sign-in page');
  // Nor does the old cookie bring the session back: it was ended at the hub.
  const replay = new Browser();
  replay.cookies.set('renkei_sid', sessionCookie);
  loc = await location(await replay.fetch(req.url), 'authorize with the old session cookie');
  assert.equal(loc.pathname, '/login', 'the ended session\'s cookie: the sign-in page');

  req = await authRequest(cfg, TAKA_CB, { scope: TAKA_SCOPE, prompt: 'none' });
  const r = await drive(hanako, req.url, { what: 'prompt=none after logout' });
  assert.deepEqual(r.pages, []);
  await assertAuthorizationError(client.authorizationCodeGrant(cfg, r.callback, {
    pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce }),
  'login_required', 'prompt=none after logout');
});
