// Load for ops/bench/oidc: virtual users (one keep-alive connection each,
// one request at a time, each from its own loopback address 127.0.0.2.. so
// the hub's per-address sign-in throttle sees one address per user, as it
// would with real residents) walk the OpenID Connect code flow of the hub
// and of oidc-provider (oidc-provider-code.mjs), taking turns run by run
// (hub, then peer, at each workload and user count) so that a change in the
// machine's other load falls on both alike. Prints one JSON line per
// measurement: {"target","workload","conc","ops","secs","per_s","p50_ms",
// "p99_ms","cpu_ms_op","db_cpu_ms_op","errors","first_error"}: cpu_ms_op is
// the CPU time the server spent per operation (user + system, from
// /proc/PID/stat: the target's processes, and for the hub its PostgreSQL
// cluster too, whose share is db_cpu_ms_op), a figure that holds up when
// other work on the machine takes CPU away, which wall-clock rates do not;
// top_thread_pct: the busiest thread's share of the first process's CPU
// (for the hub: whether its worker threads shared the work).
//
// usage: node oidc-load.mjs run CONFIG_JSON
//   CONFIG_JSON: {"targets": [{"name": "hub"|"peer", "base", "pids": [PID...],
//     "pg": POSTMASTER_PID (optional)}...], "clk_tck" (default 100), "client_id",
//     "client_secret", "redirect_uri", "scope", "login_prefix", "residents",
//     "password", "secs", "warmup" (sign-ins before the first run, default
//     2), "signin": [conc...], "code": [conc...], "refresh": [conc...]}
//     (both sides know the same client and residents)
//   Each run lasts secs: every user repeats its operation until then, and
//   operations begun before the end are waited for (so a slow sign-in at 32
//   users is counted, not cut off); ops/s = operations / time to the last.
//   workloads, in this order:
//   signin   hub: POST /login (csrf, the sealed request r, login, password),
//              csrf and r fetched once per user through GET /oauth2/authorize
//              → GET /login; no session cookie sent, so each is a first
//              sign-in: the throttle check, scrypt, a new session row, 303
//              to /consent?r=.
//            peer: GET /auth (a new interaction) → POST /interaction/UID/login
//              (scrypt in the handler) → GET /auth/UID (the session is made)
//              → 303 to the consent interaction: its interaction is single
//              use, so each sign-in takes these three requests.
//            User u signs in as residents u, u+C, u+2C, ... (mod residents):
//            no two users share a login at once (with residents a
//            multiple of C).
//   code     authorize with the user's session and consent already given
//              (given once per user before the runs), fresh PKCE, state and
//              nonce → 303 with the code → POST /token (client_secret_basic,
//              code_verifier): access, ID and refresh tokens.
//   refresh  each user rotates its own refresh token chain: POST /token
//              grant_type=refresh_token with its latest token, keeps the new.
//
// usage: node oidc-load.mjs scrypt LN R P SECS CONC
//   crypto.scrypt hashes/s with CONC in flight (the threadpool is sized to
//   CONC by the caller through UV_THREADPOOL_SIZE), after one uncounted
//   round; hashes begun before SECS are waited for. Prints JSON.
import { createHash, randomBytes, scrypt } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';

const mode = process.argv[2];

if (mode === 'scrypt') {
  const [ln, r, p, secs, conc] = process.argv.slice(3).map(Number);
  const N = 2 ** ln;
  const opts = { N, r, p, maxmem: 128 * r * (N + p + 2) + 1024 * 1024 };
  const salt = randomBytes(16);
  const one = () => new Promise((ok, ko) => scrypt('correct horse', salt, 32, opts, (e) => (e ? ko(e) : ok())));
  await Promise.all(Array.from({ length: conc }, one)); // warm-up, not counted
  const end = Date.now() + secs * 1000;
  let n = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: conc }, async () => {
    while (Date.now() < end) { await one(); n++; }
  }));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ ln, r, p, conc, hashes: n, secs: +s.toFixed(2), per_s: +(n / s).toFixed(2), ms_each: +(1000 * s * conc / n).toFixed(0) }));
  process.exit(0);
}
if (mode !== 'run' || !process.argv[3]) {
  console.error('usage: node oidc-load.mjs run CONFIG_JSON | scrypt LN R P SECS CONC');
  process.exit(2);
}

const cfg = JSON.parse(process.argv[3]);
const basic = 'Basic ' + Buffer.from(`${encodeURIComponent(cfg.client_id)}:${encodeURIComponent(cfg.client_secret)}`).toString('base64');

class Failure extends Error {}
const fail = (what, r) => {
  throw new Failure(`${what}: ${r ? `${r.status} ${(r.headers.location || r.body || '').slice(0, 200)}` : ''}`);
};

// A user of one target: one keep-alive connection from its own address, a
// cookie jar (by name; the flows are sequential so paths do not matter).
class User {
  constructor(t, i) {
    this.t = t;
    this.i = i;
    this.jar = new Map();
    this.fresh();
  }

  // a new connection: each run starts with its own (an idle one may have
  // been closed by the server meanwhile: the hub closes after 30 s)
  fresh() {
    this.agent?.destroy();
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: `127.0.0.${2 + this.i}` });
  }

  cookies() {
    return [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  request(method, path, { form, auth } = {}) {
    const body = form ? new URLSearchParams(form).toString() : null;
    const headers = {};
    if (this.jar.size) headers.Cookie = this.cookies();
    if (body !== null) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    if (auth) headers.Authorization = auth;
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: this.t.base.hostname, port: this.t.base.port, method, path, headers, agent: this.agent,
      }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          for (const sc of res.headers['set-cookie'] || []) {
            const [pair, ...attrs] = sc.split(';');
            const eq = pair.indexOf('=');
            const name = pair.slice(0, eq).trim();
            const value = pair.slice(eq + 1).trim();
            const gone = !value || attrs.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a));
            if (gone) this.jar.delete(name); else this.jar.set(name, value);
          }
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      if (body !== null) req.write(body);
      req.end();
    });
  }

  get(path) { return this.request('GET', path); }

  post(path, form, auth) { return this.request('POST', path, { form, auth }); }

  // a path on this user's target, or null for another site
  local(loc) {
    const u = new URL(loc, this.t.base);
    return u.origin === this.t.base.origin ? u.pathname + u.search : null;
  }
}

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function authorizeUrl(t, challenge) {
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: cfg.client_id,
    redirect_uri: cfg.redirect_uri,
    scope: cfg.scope,
    state: randomBytes(12).toString('base64url'),
    nonce: randomBytes(12).toString('base64url'),
    code_challenge: challenge,
    code_challenge_method: 'S256',
  });
  return `${t.authorizePath}?${q}`;
}

// the values are base64url: nothing to unescape
const hidden = (html, name) => {
  const m = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)"`).exec(html);
  return m ? m[1] : null;
};

const login = (n) => cfg.login_prefix + String(n % cfg.residents).padStart(4, '0');

// ---- sign-in ----

// hub: the sealed request and csrf, once per user (no session cookie)
async function hubLoginForm(u) {
  u.jar.delete('renkei_sid');
  const a = await u.get(authorizeUrl(u.t, pkce().challenge));
  const loc = a.status === 303 && u.local(a.headers.location);
  if (!loc || !loc.startsWith('/login?r=')) fail('authorize without a session', a);
  const page = await u.get(loc);
  const csrf = hidden(page.body, 'csrf');
  const r = hidden(page.body, 'r');
  if (page.status !== 200 || !csrf || !r) fail('GET /login', page);
  u.form = { csrf, r };
}

async function signIn(u, who) {
  if (u.t.hub) {
    u.jar.delete('renkei_sid');
    const res = await u.post('/login', { ...u.form, login: who, password: cfg.password });
    if (res.status !== 303 || !u.jar.has('renkei_sid')) fail('POST /login', res);
    return;
  }
  u.jar.clear();
  const a = await u.get(authorizeUrl(u.t, pkce().challenge));
  const loc = a.status === 303 && u.local(a.headers.location);
  if (!loc || !loc.startsWith('/interaction/')) fail('GET /auth without a session', a);
  const res = await u.post(`${loc}/login`, { login: who, password: cfg.password });
  const back = res.status === 303 && u.local(res.headers.location);
  if (!back) fail('POST /interaction/UID/login', res);
  const resumed = await u.get(back);
  if (resumed.status !== 303) fail('GET /auth/UID (resume)', resumed);
}

// ---- code flow ----

// Follows the authorization request to the code, giving consent when asked
// (setup only: without consent any page is a failure).
async function authorize(u, challenge, consent) {
  const hub = u.t.hub;
  let res = await u.get(authorizeUrl(u.t, challenge));
  for (let hops = 0; hops < 6; hops++) {
    if (res.status !== 303) fail('authorize', res);
    const loc = res.headers.location;
    if (loc.startsWith(cfg.redirect_uri + '?')) {
      const code = new URL(loc).searchParams.get('code');
      if (!code) fail('authorize', res);
      return code;
    }
    const path = u.local(loc);
    if (!consent || !path) fail('authorize', res);
    if (hub && path.startsWith('/consent?r=')) {
      const page = await u.get(path);
      const csrf = hidden(page.body, 'csrf');
      if (page.status !== 200 || !csrf) fail('GET /consent', page);
      const form = new URLSearchParams({ csrf, r: hidden(page.body, 'r'), decision: 'allow' });
      for (const s of cfg.scope.split(' ')) form.append('scope', s);
      res = await u.request('POST', '/consent', { form });
    } else if (!hub && path.startsWith('/interaction/')) {
      res = await u.post(`${path}/consent`, {});
    } else if (!hub && path.startsWith('/auth/')) {
      res = await u.get(path);
    } else {
      fail('authorize', res);
    }
  }
  fail('authorize: too many redirects');
}

async function codeFlow(u, consent = false) {
  const { verifier, challenge } = pkce();
  const code = await authorize(u, challenge, consent);
  const res = await u.post(u.t.tokenPath, {
    grant_type: 'authorization_code', code, redirect_uri: cfg.redirect_uri, code_verifier: verifier,
  }, basic);
  let t;
  try { t = JSON.parse(res.body); } catch { t = {}; }
  if (res.status !== 200 || !t.access_token || !t.id_token || !t.refresh_token) fail('token (authorization_code)', res);
  u.refresh = t.refresh_token;
}

async function refresh(u) {
  const res = await u.post(u.t.tokenPath, { grant_type: 'refresh_token', refresh_token: u.refresh }, basic);
  let t;
  try { t = JSON.parse(res.body); } catch { t = {}; }
  if (res.status !== 200 || !t.access_token || !t.refresh_token) fail('token (refresh_token)', res);
  if (t.refresh_token === u.refresh) fail('token (refresh_token): the refresh token was not rotated');
  u.refresh = t.refresh_token;
}

// ---- measuring ----

// CPU milliseconds used so far by a target's processes (and its cluster:
// the postmaster, what it reaped, and its live children), db part apart
const msPerTick = 1000 / (cfg.clk_tck || 100);
function stat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), own: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) };
  } catch {
    return null;
  }
}
function cpu(t) {
  let own = 0;
  let db = 0;
  for (const pid of t.pids || []) own += stat(pid)?.own ?? 0;
  if (t.pg) {
    const pm = stat(t.pg);
    db += pm ? pm.own + pm.reaped : 0;
    for (const d of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(d)) continue;
      const st = stat(d);
      if (st && st.ppid === t.pg) db += st.own;
    }
  }
  return { all: (own + db) * msPerTick, db: db * msPerTick };
}
// CPU ticks by thread of the target's first process
function threads(t) {
  const out = new Map();
  const pid = t.pids?.[0];
  if (!pid) return out;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) out.set(tid, stat(`${pid}/task/${tid}`)?.own ?? 0);
  } catch { /* gone */ }
  return out;
}
// the busiest thread's share of what the process's threads did in between
function topShare(before, after) {
  let sum = 0;
  let top = 0;
  for (const [tid, v] of after) {
    const d = v - (before.get(tid) ?? 0);
    sum += d;
    top = Math.max(top, d);
  }
  return sum > 0 ? Math.round((100 * top) / sum) : null;
}

const pct = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : 0);

async function measure(t, workload, users, op) {
  for (const u of users) u.fresh();
  const lat = [];
  let errors = 0;
  let firstError = null;
  const c0 = cpu(t);
  const th0 = threads(t);
  const t0 = process.hrtime.bigint();
  const end = Date.now() + cfg.secs * 1000;
  await Promise.all(users.map(async (u, k) => {
    for (let n = 0; Date.now() < end; n++) {
      const s = process.hrtime.bigint();
      try {
        await op(u, k, n);
        lat.push(Number(process.hrtime.bigint() - s) / 1e6);
      } catch (e) {
        errors++;
        firstError ??= e.message;
        if (!(e instanceof Failure)) await new Promise((ok) => setTimeout(ok, 50));
      }
    }
  }));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const c1 = cpu(t);
  const th1 = threads(t);
  lat.sort((a, b) => a - b);
  const rate = lat.length / secs;
  const perOp = (ms) => (lat.length ? +(ms / lat.length).toFixed(ms / lat.length < 10 ? 2 : 0) : null);
  console.log(JSON.stringify({
    target: t.name,
    workload,
    conc: users.length,
    ops: lat.length,
    secs: +secs.toFixed(2),
    per_s: +rate.toFixed(rate < 100 ? 2 : 0),
    p50_ms: +pct(lat, 0.5).toFixed(1),
    p99_ms: +pct(lat, 0.99).toFixed(1),
    cpu_ms_op: perOp(c1.all - c0.all),
    db_cpu_ms_op: t.pg ? perOp(c1.db - c0.db) : null,
    top_thread_pct: topShare(th0, th1),
    errors,
    first_error: firstError,
  }));
}

const maxConc = Math.max(1, ...(cfg.signin || []), ...(cfg.code || []), ...(cfg.refresh || []));
if (maxConc > 250) throw new Error('at most 250 users (one loopback address each)');
const targets = cfg.targets.map(({ name, base, pids, pg }) => {
  const t = {
    name,
    pids,
    pg,
    base: new URL(base),
    hub: name === 'hub',
    authorizePath: name === 'hub' ? '/oauth2/authorize' : '/auth',
    tokenPath: name === 'hub' ? '/oauth2/token' : '/token',
  };
  t.users = Array.from({ length: maxConc }, (_, i) => new User(t, i));
  return t;
});

// warm-up, not measured: a few sign-ins by one user on each side
for (const t of (cfg.signin || []).length ? targets : []) {
  const u = t.users[0];
  u.fresh();
  if (t.hub) await hubLoginForm(u);
  for (let n = 0; n < (cfg.warmup ?? 2); n++) await signIn(u, login(n));
}
for (const c of cfg.signin || []) {
  for (const t of targets) {
    const us = t.users.slice(0, c);
    us.forEach((u) => u.fresh());
    if (t.hub) await Promise.all(us.map(hubLoginForm));
    await measure(t, 'signin', us, (u, k, n) => signIn(u, login(k + n * c)));
  }
}

const flowConc = [...(cfg.code || []), ...(cfg.refresh || [])];
if (flowConc.length) {
  // set-up: each user signed in (unless a sign-in run left it a session)
  // and consent given once, through one full flow (which also starts its
  // refresh token chain)
  for (const t of targets) {
    for (const u of t.users.slice(0, Math.max(...flowConc))) {
      u.fresh();
      if (!u.jar.has(t.hub ? 'renkei_sid' : '_session')) {
        if (t.hub) await hubLoginForm(u);
        await signIn(u, login(u.i));
      }
      await codeFlow(u, true);
    }
  }
}
for (const c of cfg.code || []) {
  for (const t of targets) await measure(t, 'code', t.users.slice(0, c), (u) => codeFlow(u));
}
for (const c of cfg.refresh || []) {
  for (const t of targets) await measure(t, 'refresh', t.users.slice(0, c), (u) => refresh(u));
}
for (const t of targets) for (const u of t.users) u.agent.destroy();
