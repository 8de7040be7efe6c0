// The peer for ops/bench/oidc: oidc-provider (a certified OpenID provider)
// configured like the hub's resident flow: authorization_code + PKCE (S256)
// + refresh_token with rotation on every use, ES256 ID tokens and ES256 JWT
// access tokens (RFC 9068 via resource indicators, audience the issuer),
// pairwise subjects (HMAC of sector and account), client_secret_basic, and
// its own sign-in and consent: devInteractions off, the two interaction
// prompts answered by a tiny handler in front of the provider
// (provider.interactionDetails / interactionFinished), the password checked
// with Node's crypto.scrypt against the hub's own stored hash
// ("$scrypt$ln=L,r=R,p=P$salt$hash"), so both do the same work per sign-in.
// Storage: memory (the hub writes to PostgreSQL), a plain Map with expiry
// (oidc-provider's own memory adapter is an LRU of 1,000 entries: under this
// load it drops live grants and sessions, and refresh grants then fail).
//
// usage: node oidc-provider-code.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI
//          LOGIN_PREFIX COUNT STORED_HASH
//   accounts LOGIN_PREFIX0000 .. LOGIN_PREFIX(COUNT-1), all with STORED_HASH
//
//   POST /interaction/UID/login    login, password  → 303 back to /auth/UID
//   POST /interaction/UID/consent  (grants what the prompt is missing)
//   GET  /interaction/UID          a minimal page naming the prompt
import { createHmac, scrypt, timingSafeEqual, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri, prefix, countArg, stored] = process.argv.slice(2);
if (!stored) {
  console.error('usage: node oidc-provider-code.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI LOGIN_PREFIX COUNT STORED_HASH');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig', kid: 'bench' };

// the hub's hash format: standard base64 without padding
const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(stored);
if (!m) {
  console.error(`not a $scrypt$ hash: ${stored.slice(0, 30)}...`);
  process.exit(2);
}
const params = { N: 2 ** Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
params.maxmem = 128 * params.r * (params.N + params.p + 2) + 1024 * 1024;
const salt = Buffer.from(m[4], 'base64');
const want = Buffer.from(m[5], 'base64');

const accounts = new Map(); // login → account
for (let i = 0; i < Number(countArg); i++) {
  const login = prefix + String(i).padStart(4, '0');
  accounts.set(login, {
    id: `acct-${i}`, login, name: `Bench ${i}`, email: `${login}@bench.example`,
  });
}
const byId = new Map([...accounts.values()].map((a) => [a.id, a]));

function passwordOk(password) {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, want.length, params, (err, got) => {
      if (err) reject(err); else resolve(timingSafeEqual(got, want));
    });
  });
}

// oidc-provider's memory adapter without its size limit
const store = new Map(); // key → { payload, exp (ms) }
const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken']);
class MapAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  static get(key) {
    const e = store.get(key);
    if (!e) return undefined;
    if (e.exp && e.exp < Date.now()) {
      store.delete(key);
      return undefined;
    }
    return e.payload;
  }

  static set(key, payload, expiresIn) {
    store.set(key, { payload, exp: expiresIn ? Date.now() + expiresIn * 1000 : 0 });
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    if (this.model === 'Session') MapAdapter.set(`sessionUid:${payload.uid}`, id, expiresIn);
    if (grantable.has(this.model) && payload.grantId) {
      const g = `grant:${payload.grantId}`;
      const list = MapAdapter.get(g);
      if (list) list.add(key); else MapAdapter.set(g, new Set([key]), 0);
    }
    MapAdapter.set(key, payload, expiresIn);
  }

  async find(id) { return MapAdapter.get(this.key(id)); }

  async findByUid(uid) { return this.find(MapAdapter.get(`sessionUid:${uid}`)); }

  async findByUserCode() { return undefined; }

  async consume(id) {
    const p = MapAdapter.get(this.key(id));
    if (p) p.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    const key = this.key(id);
    const p = MapAdapter.get(key);
    if (p?.grantId) MapAdapter.get(`grant:${p.grantId}`)?.delete(key);
    store.delete(key);
  }

  async revokeByGrantId(grantId) {
    const g = `grant:${grantId}`;
    for (const key of MapAdapter.get(g) || []) store.delete(key);
    store.delete(g);
  }
}

const pairwiseKey = randomBytes(32);
const provider = new Provider(issuer, {
  adapter: MapAdapter,
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [redirectUri],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
    subject_type: 'pairwise',
  }],
  jwks: { keys: [jwk] },
  cookies: {
    keys: [randomBytes(32).toString('base64url')],
    long: { signed: true },
    short: { signed: true },
  },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  scopes: ['openid', 'offline_access', 'ngsi.read'],
  subjectTypes: ['pairwise'],
  pairwiseIdentifier: (ctx, accountId, client) => createHmac('sha256', pairwiseKey)
    .update(`${client.sectorIdentifier}\0${accountId}`).digest('base64url'),
  async findAccount(ctx, id) {
    const a = byId.get(id);
    if (!a) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, name: a.name, preferred_username: a.login, email: a.email, email_verified: false,
        };
      },
    };
  },
  pkce: { methods: ['S256'], required: () => true },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  ttl: {
    AccessToken: 600, AuthorizationCode: 60, IdToken: 600, RefreshToken: 30 * 86400,
    Interaction: 900, Session: 36000, Grant: 365 * 86400,
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => issuer,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'ngsi.read',
        audience: issuer,
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

function readForm(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

function page(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(`<!DOCTYPE html><html><body><p>${text}</p></body></html>`);
}

async function interaction(req, res) {
  const [, , uid, action] = new URL(req.url, issuer).pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return page(res, 400, 'interaction mismatch');
  const { prompt, params: ip, session, grantId } = details;
  if (req.method === 'GET' && !action) return page(res, 200, `prompt: ${prompt.name}`);
  if (req.method !== 'POST') return page(res, 405, 'method not allowed');
  if (action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    const account = accounts.get((form.get('login') || '').toLowerCase());
    // an unknown login costs the same scrypt work as a known one
    const right = await passwordOk(form.get('password') || '');
    if (!account || !right) return page(res, 401, 'wrong login or password');
    return provider.interactionFinished(req, res, {
      login: { accountId: account.id, amr: ['pwd'], acr: '1' },
    }, { mergeWithLastSubmission: false });
  }
  if (action === 'consent' && prompt.name === 'consent') {
    await readForm(req);
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: ip.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [indicator, scope] of Object.entries(d.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } },
      { mergeWithLastSubmission: true });
  }
  return page(res, 400, `unexpected ${action} for prompt ${prompt.name}`);
}

const handle = provider.callback();
createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      console.error('interaction:', err.message);
      if (!res.headersSent) page(res, 400, 'interaction failed');
    });
    return;
  }
  handle(req, res);
}).listen(Number(port), '127.0.0.1', () => console.error(`oidc-provider (code flow) on ${issuer}`));
