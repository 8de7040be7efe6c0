// The hub's token service as standard OAuth client libraries see it:
// openid-client (discovery, client_credentials, introspection, revocation,
// dynamic registration) and jose (every access token verified against the
// published JWKS as an RFC 9068 JWT).  Run by run.sh against a running hub;
// the tests run in order and share what earlier ones obtained.
//
// Environment (run.sh sets it):
//   HUB_URL             the hub, e.g. http://127.0.0.1:PORT; also the issuer
//   CLIENT_ID, CLIENT_SECRET            client_secret_basic client of tenant
//                                       takamatsu, scopes "ngsi.read ngsi.write"
//   CLIENT_POST_ID, CLIENT_POST_SECRET  the same with client_secret_post
//   IAT                 initial access token for registration in takamatsu
//                       (this file uses it twice)
import { test } from 'node:test';
import assert from 'node:assert/strict';

import * as client from 'openid-client';
import { createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify } from 'jose';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} must be set (tests/interop/run.sh sets it)`);
  return v;
}

const HUB_URL = env('HUB_URL');
const CLIENT_ID = env('CLIENT_ID');
const CLIENT_SECRET = env('CLIENT_SECRET');
const CLIENT_POST_ID = env('CLIENT_POST_ID');
const CLIENT_POST_SECRET = env('CLIENT_POST_SECRET');
const IAT = env('IAT');
const TENANT = 'takamatsu';

// The hub serves plain HTTP on loopback; RFC 8414 metadata only.
const OPTIONS = { algorithm: 'oauth2', execute: [client.allowInsecureRequests] };

// What earlier tests obtained.
let config; // CLIENT_ID, client_secret_basic
let postConfig; // CLIENT_POST_ID, client_secret_post
let registered; // the client_secret_basic client from dynamic registration
// Every access token any test obtained: { label, token, clientId, scope, expiresIn }.
const issued = [];

function need(value, what) {
  assert.ok(value, `${what} is missing: an earlier test failed`);
  return value;
}

// clientCredentialsGrant with the checks every successful grant gets; the
// token joins `issued` for the jose tests.
async function grant(label, cfg, clientId, scope) {
  const r = await client.clientCredentialsGrant(cfg, { scope });
  assert.equal(typeof r.access_token, 'string', `${label}: access_token is a string`);
  assert.ok(r.access_token.length > 0, `${label}: access_token is not empty`);
  assert.equal(r.token_type, 'bearer', `${label}: token_type (openid-client lower-cases it)`);
  assert.ok(Number.isInteger(r.expires_in), `${label}: expires_in ${r.expires_in} is an integer`);
  assert.ok(r.expires_in > 0, `${label}: expires_in ${r.expires_in} > 0`);
  assert.equal(r.scope, scope, `${label}: scope`);
  assert.equal(r.refresh_token, undefined, `${label}: no refresh token for client_credentials`);
  issued.push({ label, token: r.access_token, clientId, scope, expiresIn: r.expires_in });
  return r;
}

// The rejection of `promise`, which must reject.
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

// An OAuth error response (RFC 6749 §5.2) without an authentication
// challenge: openid-client throws ResponseBodyError.
async function assertResponseBodyError(promise, status, error, what) {
  const err = await rejection(promise, what);
  assert.ok(err instanceof client.ResponseBodyError,
    `${what}: expected ResponseBodyError, got ${explain(err)}`);
  assert.equal(err.status, status, `${what}: HTTP status`);
  assert.equal(err.error, error, `${what}: error code`);
  assert.equal(typeof err.error_description, 'string', `${what}: error_description is a string`);
  assert.ok(err.error_description.length > 0, `${what}: error_description is not empty`);
}

// A 401 with a WWW-Authenticate challenge (RFC 6749 §5.2 requires one for
// invalid_client when the client used the Authorization header; RFC 6750 §3
// for a bad bearer token): openid-client throws WWWAuthenticateChallengeError
// before it reads the body, which still carries the OAuth error.
async function assertChallenge(promise, scheme, error, what) {
  const err = await rejection(promise, what);
  assert.ok(err instanceof client.WWWAuthenticateChallengeError,
    `${what}: expected WWWAuthenticateChallengeError, got ${explain(err)}`);
  assert.equal(err.status, 401, `${what}: HTTP status`);
  assert.ok(Array.isArray(err.cause) && err.cause.length === 1,
    `${what}: exactly one challenge, got ${JSON.stringify(err.cause)}`);
  assert.equal(err.cause[0].scheme, scheme, `${what}: challenge scheme`);
  const body = await err.response.json();
  assert.equal(body.error, error, `${what}: error code in the body`);
  assert.equal(typeof body.error_description, 'string', `${what}: error_description`);
  return err;
}

function bearer(token) {
  return { Authorization: `Bearer ${token}` };
}

// ------------------------------------------------------------ openid-client

test('discovery: RFC 8414 metadata through openid-client', async () => {
  config = await client.discovery(new URL(HUB_URL), CLIENT_ID, CLIENT_SECRET,
    client.ClientSecretBasic(CLIENT_SECRET), OPTIONS);
  const m = config.serverMetadata();
  assert.equal(m.issuer, HUB_URL);
  assert.equal(m.token_endpoint, `${HUB_URL}/oauth2/token`);
  assert.equal(m.introspection_endpoint, `${HUB_URL}/oauth2/introspect`);
  assert.equal(m.revocation_endpoint, `${HUB_URL}/oauth2/revoke`);
  assert.equal(m.registration_endpoint, `${HUB_URL}/oauth2/register`);
  assert.equal(m.jwks_uri, `${HUB_URL}/oauth2/jwks`);
  assert.deepEqual([...m.grant_types_supported].sort(), ['authorization_code', 'client_credentials',
    'refresh_token', 'urn:ietf:params:oauth:grant-type:token-exchange']);
  for (const method of ['client_secret_basic', 'client_secret_post']) {
    assert.ok(m.token_endpoint_auth_methods_supported?.includes(method),
      `token_endpoint_auth_methods_supported includes ${method}`);
  }
  assert.equal(config.clientMetadata().client_id, CLIENT_ID);
});

test('client_credentials with client_secret_basic', async () => {
  const cfg = need(config, 'the discovered configuration');
  await grant('basic ngsi.read', cfg, CLIENT_ID, 'ngsi.read');
  await grant('basic ngsi.read ngsi.write', cfg, CLIENT_ID, 'ngsi.read ngsi.write');
});

test('introspection (RFC 7662) of an active token', async () => {
  const cfg = need(config, 'the discovered configuration');
  const t = need(issued.find((i) => i.label === 'basic ngsi.read'), 'the basic ngsi.read token');
  const r = await client.tokenIntrospection(cfg, t.token);
  const jwt = decodeJwt(t.token);
  assert.equal(r.active, true);
  assert.equal(r.client_id, CLIENT_ID);
  assert.equal(r.scope, 'ngsi.read');
  assert.equal(r.sub, CLIENT_ID);
  assert.equal(r.iss, HUB_URL);
  assert.equal(r.aud, HUB_URL);
  assert.equal(r.jti, jwt.jti);
  assert.equal(r.exp, jwt.exp);
  assert.equal(r.iat, jwt.iat);
  assert.equal(r.tenant, TENANT);
});

test('revocation (RFC 7009): the revoked token turns inactive, the others stay active', async () => {
  const cfg = need(config, 'the discovered configuration');
  const r = await grant('basic, to revoke', cfg, CLIENT_ID, 'ngsi.read');
  const other = need(issued.find((i) => i.label === 'basic ngsi.read ngsi.write'),
    'the basic ngsi.read ngsi.write token');
  assert.equal((await client.tokenIntrospection(cfg, r.access_token)).active, true,
    'active before revocation');
  assert.equal(await client.tokenRevocation(cfg, r.access_token), undefined);
  assert.deepEqual(await client.tokenIntrospection(cfg, r.access_token), { active: false },
    'after revocation: inactive, and nothing else disclosed');
  assert.equal((await client.tokenIntrospection(cfg, other.token)).active, true,
    'a token that was not revoked is still active');
});

test('client_credentials and introspection with client_secret_post', async () => {
  const m = need(config, 'the discovered configuration').serverMetadata();
  postConfig = await client.discovery(new URL(HUB_URL), CLIENT_POST_ID, CLIENT_POST_SECRET,
    client.ClientSecretPost(CLIENT_POST_SECRET), OPTIONS);
  assert.equal(postConfig.serverMetadata().issuer, m.issuer);
  const r = await grant('post ngsi.read', postConfig, CLIENT_POST_ID, 'ngsi.read');
  const i = await client.tokenIntrospection(postConfig, r.access_token);
  assert.equal(i.active, true);
  assert.equal(i.client_id, CLIENT_POST_ID);
  assert.equal(i.sub, CLIENT_POST_ID);
  // The client's registered method is the only one it may use.
  const viaBasic = new client.Configuration(m, CLIENT_POST_ID, CLIENT_POST_SECRET,
    client.ClientSecretBasic(CLIENT_POST_SECRET));
  client.allowInsecureRequests(viaBasic);
  await assertChallenge(client.clientCredentialsGrant(viaBasic, { scope: 'ngsi.read' }),
    'basic', 'invalid_client', 'client_secret_post client using client_secret_basic');
});

test('a wrong client secret: invalid_client', async () => {
  const m = need(config, 'the discovered configuration').serverMetadata();
  const wrong = (s) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1);

  // client_secret_post: a plain OAuth error response.
  const post = new client.Configuration(m, CLIENT_POST_ID, wrong(CLIENT_POST_SECRET),
    client.ClientSecretPost(wrong(CLIENT_POST_SECRET)));
  client.allowInsecureRequests(post);
  await assertResponseBodyError(client.clientCredentialsGrant(post, { scope: 'ngsi.read' }),
    401, 'invalid_client', 'client_secret_post with a wrong secret');

  // client_secret_basic: the same error with its "WWW-Authenticate: Basic"
  // challenge (RFC 6749 §5.2), which openid-client surfaces as such.
  const basic = new client.Configuration(m, CLIENT_ID, wrong(CLIENT_SECRET),
    client.ClientSecretBasic(wrong(CLIENT_SECRET)));
  client.allowInsecureRequests(basic);
  await assertChallenge(client.clientCredentialsGrant(basic, { scope: 'ngsi.read' }),
    'basic', 'invalid_client', 'client_secret_basic with a wrong secret');
});

test('dynamic registration needs an initial access token', async () => {
  await assertChallenge(
    client.dynamicClientRegistration(new URL(HUB_URL),
      { client_name: 'no token', grant_types: ['client_credentials'], scope: 'ngsi.read' },
      client.ClientSecretBasic(), OPTIONS),
    'bearer', 'invalid_token', 'registration without an initial access token');
  await assertChallenge(
    client.dynamicClientRegistration(new URL(HUB_URL),
      { client_name: 'bad token', grant_types: ['client_credentials'], scope: 'ngsi.read' },
      client.ClientSecretBasic(), { ...OPTIONS, initialAccessToken: `${IAT}x` }),
    'bearer', 'invalid_token', 'registration with an unknown initial access token');
});

test('dynamic registration (RFC 7591) of a client_secret_basic client', async () => {
  registered = await client.dynamicClientRegistration(new URL(HUB_URL), {
    client_name: 'interop app',
    grant_types: ['client_credentials'],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'ngsi.read',
  }, client.ClientSecretBasic(), { ...OPTIONS, initialAccessToken: IAT });
  const md = registered.clientMetadata();
  assert.equal(typeof md.client_id, 'string');
  assert.ok(md.client_id.length > 0, 'client_id is not empty');
  assert.ok(![CLIENT_ID, CLIENT_POST_ID].includes(md.client_id), 'a new client_id');
  assert.equal(typeof md.client_secret, 'string');
  assert.ok(md.client_secret.length >= 43, `a 256-bit secret, got ${md.client_secret.length} chars`);
  assert.equal(typeof md.client_secret_expires_at, 'number');
  assert.equal(md.client_name, 'interop app');
  assert.deepEqual(md.grant_types, ['client_credentials']);
  assert.equal(md.token_endpoint_auth_method, 'client_secret_basic');
  assert.equal(md.scope, 'ngsi.read');
  assert.equal(typeof md.registration_access_token, 'string');
  assert.ok(md.registration_access_token.length > 0, 'registration_access_token is not empty');
  assert.equal(typeof md.registration_client_uri, 'string');
  assert.equal(new URL(md.registration_client_uri).origin, new URL(HUB_URL).origin,
    'registration_client_uri is on the hub');
  assert.equal(registered.serverMetadata().issuer, HUB_URL);

  await grant('registered basic ngsi.read', registered, md.client_id, 'ngsi.read');
  // Registered with scope ngsi.read only.
  await assertResponseBodyError(client.clientCredentialsGrant(registered, { scope: 'ngsi.write' }),
    400, 'invalid_scope', 'registered client asking for a scope it was not registered for');
});

test('client configuration (RFC 7592): read, then delete', async () => {
  const md = need(registered, 'the registered client').clientMetadata();
  const uri = md.registration_client_uri;

  let res = await fetch(uri, { headers: bearer(md.registration_access_token) });
  assert.equal(res.status, 200, 'GET with the registration access token');
  assert.match(res.headers.get('content-type') ?? '', /^application\/json\b/);
  const read = await res.json();
  assert.equal(read.client_id, md.client_id);
  assert.equal(read.client_name, 'interop app');
  assert.deepEqual(read.grant_types, ['client_credentials']);
  assert.equal(read.token_endpoint_auth_method, 'client_secret_basic');
  assert.equal(read.scope, 'ngsi.read');
  assert.equal(read.registration_client_uri, uri);
  assert.ok(!('client_secret' in read), 'the read response does not disclose client_secret');

  res = await fetch(uri, { headers: bearer(`${md.registration_access_token}x`) });
  assert.equal(res.status, 401, 'GET with a wrong registration access token');
  await res.body?.cancel();

  res = await fetch(uri, { method: 'DELETE', headers: bearer(md.registration_access_token) });
  assert.equal(res.status, 204, 'DELETE with the registration access token');
  assert.equal(await res.text(), '', '204 has no body');

  // RFC 7592 §2.3: a successful delete invalidates the client_id, the
  // client_secret and the registration access token.
  await assertChallenge(client.clientCredentialsGrant(registered, { scope: 'ngsi.read' }),
    'basic', 'invalid_client', 'client_credentials of the deleted client');
  res = await fetch(uri, { headers: bearer(md.registration_access_token) });
  assert.equal(res.status, 401, 'GET of the deleted client');
  await res.body?.cancel();
});

test('dynamic registration of a client_secret_post client (openid-client default auth)', async () => {
  const cfg = await client.dynamicClientRegistration(new URL(HUB_URL), {
    client_name: 'interop post app',
    grant_types: ['client_credentials'],
    token_endpoint_auth_method: 'client_secret_post',
    scope: 'ngsi.write',
  }, undefined, { ...OPTIONS, initialAccessToken: IAT });
  const md = cfg.clientMetadata();
  assert.equal(md.token_endpoint_auth_method, 'client_secret_post');
  assert.equal(typeof md.client_secret, 'string');
  await grant('registered post ngsi.write', cfg, md.client_id, 'ngsi.write');
});

// --------------------------------------------------------------------- jose

test('JWKS: public signing keys only', async () => {
  const res = await fetch(`${HUB_URL}/oauth2/jwks`);
  assert.equal(res.status, 200);
  const { keys } = await res.json();
  assert.ok(Array.isArray(keys) && keys.length > 0, 'keys is a non-empty array');
  for (const k of keys) {
    assert.equal(typeof k.kid, 'string', 'every key has a kid');
    assert.equal(k.use, 'sig');
    assert.ok(['ES256', 'RS256'].includes(k.alg), `alg ${k.alg}`);
    for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) {
      assert.ok(!(priv in k), `key ${k.kid} has no private member ${priv}`);
    }
  }
  assert.equal(new Set(keys.map((k) => k.kid)).size, keys.length, 'kids are unique');
});

test('jose verifies every access token the tests obtained (RFC 9068)', async () => {
  const expected = ['basic ngsi.read', 'basic ngsi.read ngsi.write', 'basic, to revoke',
    'post ngsi.read', 'registered basic ngsi.read', 'registered post ngsi.write'];
  assert.deepEqual(issued.map((i) => i.label).sort(), [...expected].sort(),
    'every grant above succeeded and left its token');

  const kids = (await (await fetch(`${HUB_URL}/oauth2/jwks`)).json()).keys.map((k) => k.kid);
  const JWKS = createRemoteJWKSet(new URL(`${HUB_URL}/oauth2/jwks`));
  const jtis = new Set();
  for (const t of issued) {
    const { payload, protectedHeader } = await jwtVerify(t.token, JWKS, {
      issuer: HUB_URL,
      audience: HUB_URL,
      typ: 'at+jwt',
      algorithms: ['ES256', 'RS256'],
    });
    const what = `token "${t.label}"`;
    assert.equal(protectedHeader.alg, 'ES256', `${what}: alg`);
    assert.equal(protectedHeader.typ, 'at+jwt', `${what}: typ`);
    assert.ok(kids.includes(protectedHeader.kid), `${what}: kid ${protectedHeader.kid} is in the JWKS`);
    assert.equal(payload.iss, HUB_URL, `${what}: iss`);
    assert.equal(payload.aud, HUB_URL, `${what}: aud`);
    assert.equal(payload.sub, t.clientId, `${what}: sub`);
    assert.equal(payload.client_id, t.clientId, `${what}: client_id`);
    assert.equal(payload.scope, t.scope, `${what}: scope`);
    assert.equal(payload.tenant, TENANT, `${what}: tenant`);
    assert.equal(typeof payload.jti, 'string', `${what}: jti is a string`);
    assert.ok(payload.jti.length > 0, `${what}: jti is not empty`);
    assert.ok(!jtis.has(payload.jti), `${what}: jti is unique`);
    jtis.add(payload.jti);
    assert.ok(Number.isInteger(payload.iat), `${what}: iat is an integer`);
    assert.ok(Number.isInteger(payload.exp), `${what}: exp is an integer`);
    assert.equal(payload.exp - payload.iat, t.expiresIn, `${what}: exp - iat == expires_in`);
  }
});

test('jose refuses a token whose signature has one byte changed', async () => {
  assert.ok(issued.length > 0, 'there are tokens to tamper with');
  const JWKS = createRemoteJWKSet(new URL(`${HUB_URL}/oauth2/jwks`));
  for (const t of issued) {
    const [h, p, s] = t.token.split('.');
    const sig = Buffer.from(s, 'base64url');
    sig[sig.length >> 1] ^= 0x01;
    const forged = `${h}.${p}.${sig.toString('base64url')}`;
    assert.notEqual(forged, t.token);
    const err = await rejection(jwtVerify(forged, JWKS, {
      issuer: HUB_URL, audience: HUB_URL, typ: 'at+jwt', algorithms: ['ES256', 'RS256'],
    }), `token "${t.label}" with a changed signature`);
    assert.ok(err instanceof joseErrors.JWSSignatureVerificationFailed,
      `token "${t.label}" with a changed signature: expected JWSSignatureVerificationFailed, got ${explain(err)}`);
  }
});
