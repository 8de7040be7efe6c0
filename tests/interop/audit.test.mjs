// The audit log as an outside auditor checks it, with nothing of renkei's
// code: a verifier written here from audit/FORMAT.md and RFC 9162 (JCS
// canonical bytes, leaf hashes, MTH, inclusion and consistency verification,
// checkpoint signatures with WebCrypto) run against what a live hub serves.
// Run by run.sh against a running hub; the tests run in order and share what
// earlier ones obtained (the entries, their leaf hashes, the tree).
//
// Environment (run.sh sets it):
//   HUB_URL                               the hub, e.g. http://127.0.0.1:PORT
//   AUDIT_CLIENT_ID, AUDIT_CLIENT_SECRET  client of kagawa (top-level), scopes
//                                         "admin audit.read"
//   CLIENT_ID, CLIENT_SECRET              client of takamatsu, scopes
//                                         "ngsi.read ngsi.write" (no audit.read)
//   AUDIT_TEST_SEED                       optional: the seed of the random
//                                         choices (printed as a diagnostic)
//
// Other test files may run at the same time and append entries (client
// registration, ...): the log only grows, so every check is made on a prefix
// of it whose size this file fixed first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, webcrypto } from 'node:crypto';

const { subtle } = webcrypto;

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} must be set (tests/interop/run.sh sets it)`);
  return v;
}

const HUB_URL = env('HUB_URL');
const AUDIT_CLIENT_ID = env('AUDIT_CLIENT_ID');
const AUDIT_CLIENT_SECRET = env('AUDIT_CLIENT_SECRET');
const CLIENT_ID = env('CLIENT_ID');
const CLIENT_SECRET = env('CLIENT_SECRET');

const TENANTS_TO_CREATE = 310;
const CONCURRENCY = 8;

// ------------------------------------------------------------------ helpers

// A small seeded PRNG (mulberry32) so that a failure can be replayed with
// AUDIT_TEST_SEED.
const SEED = Number(process.env.AUDIT_TEST_SEED ?? randomBytes(4).readUInt32LE(0)) >>> 0;
let prngState = SEED;
function random() {
  prngState = (prngState + 0x6d2b79f5) >>> 0;
  let t = prngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
// An integer in [lo, hi].
function randInt(lo, hi) {
  return lo + Math.floor(random() * (hi - lo + 1));
}

// fn(item, index) over items, at most n at a time; results in item order.
async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One HTTP exchange; the body is read as text.
async function http(path, { token, method = 'GET', body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const res = await fetch(`${HUB_URL}${path}`, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function parseJson(r, what) {
  try {
    return JSON.parse(r.text);
  } catch (err) {
    assert.fail(`${what}: the body is not JSON (${err.message}): ${r.text.slice(0, 300)}`);
  }
}

// GET path, which must answer 200 with JSON.
async function getJson(path, token, what = `GET ${path}`) {
  const r = await http(path, { token });
  assert.equal(r.status, 200, `${what}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  return parseJson(r, what);
}

// The hub's error names (NGSI style) by status.
const ERROR_NAMES = { 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden' };

// An error reply: status and a JSON {"error", "description"} body.
function assertErrorReply(r, status, what, error = ERROR_NAMES[status]) {
  assert.equal(r.status, status, `${what}: HTTP status (body ${r.text.slice(0, 300)})`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${what}: Content-Type`);
  const body = parseJson(r, what);
  assert.deepEqual(Object.keys(body).sort(), ['description', 'error'],
    `${what}: the body has exactly error and description: ${r.text}`);
  assert.equal(typeof body.error, 'string', `${what}: error is a string`);
  assert.ok(body.error.length > 0, `${what}: error is not empty`);
  if (error) assert.equal(body.error, error, `${what}: error`);
  assert.equal(typeof body.description, 'string', `${what}: description is a string`);
  assert.ok(body.description.length > 0, `${what}: description is not empty`);
  return body;
}

// client_credentials with client_secret_basic (RFC 6749 §2.3.1, §4.4).
async function clientToken(id, secret, scope) {
  const basic = Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`)
    .toString('base64');
  const res = await fetch(`${HUB_URL}/oauth2/token`, {
    method: 'POST',
    headers: {
      Authorization: `Basic ${basic}`,
      'Content-Type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope }).toString(),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `token for ${id} (${scope}): HTTP ${res.status} ${text}`);
  const body = JSON.parse(text);
  assert.equal(typeof body.access_token, 'string', `token for ${id}: access_token`);
  assert.equal(body.scope, scope, `token for ${id}: scope`);
  return body.access_token;
}

let auditTokenPromise;
function auditToken() {
  auditTokenPromise ??= clientToken(AUDIT_CLIENT_ID, AUDIT_CLIENT_SECRET, 'admin audit.read');
  return auditTokenPromise;
}

// ------------------------------------------------------- hashing and JCS

const EMPTY = Buffer.alloc(0);
const sha256 = (...parts) => createHash('sha256').update(Buffer.concat(parts)).digest();
const leafHashOf = (bytes) => sha256(Buffer.from([0x00]), bytes);
const nodeHash = (l, r) => sha256(Buffer.from([0x01]), l, r);
const hex = (b) => Buffer.from(b).toString('hex');

const B64_HASH = /^[A-Za-z0-9+/]{43}=$/;
// A hash as the API shows it: standard base64 with padding, 32 bytes.
function hashFromB64(s, what) {
  assert.equal(typeof s, 'string', `${what}: a base64 string`);
  assert.match(s, B64_HASH, `${what}: standard base64 of 32 bytes with padding`);
  const b = Buffer.from(s, 'base64');
  assert.equal(b.length, 32, `${what}: 32 bytes`);
  assert.equal(b.toString('base64'), s, `${what}: canonical base64`);
  return b;
}

// RFC 8785 for FORMAT.md §1's value set: objects, arrays, strings, true,
// false, null and integers of magnitude below 2^53.  JSON.stringify escapes
// strings exactly as JCS does, and the default sort compares UTF-16 code
// units, as JCS orders member names.
function jcs(v) {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new Error(`${v} is not an integer below 2^53`);
    return String(v);
  }
  if (Array.isArray(v)) return `[${v.map(jcs).join(',')}]`;
  if (typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${jcs(v[k])}`).join(',')}}`;
  }
  throw new Error(`${typeof v} is not in the entry value set`);
}

// ----------------------------------------------------- RFC 9162 §2.1

// The largest power of two smaller than n (n > 1).
function splitPoint(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

const isPow2 = (n) => n > 0 && (n & (n - 1)) === 0;

// A tree over leaf hashes: MTH of any range (memoised), and the proofs of
// §2.1.3.1 and §2.1.4.1 (to compare with the hub's, which are deterministic).
class Tree {
  constructor(leaves) {
    this.leaves = leaves;
    this.memo = new Map();
  }

  // MTH(D[lo:hi])
  mth(lo, hi) {
    const n = hi - lo;
    if (n === 0) return sha256(EMPTY);
    if (n === 1) return this.leaves[lo];
    const key = `${lo}:${hi}`;
    let h = this.memo.get(key);
    if (!h) {
      const k = splitPoint(n);
      h = nodeHash(this.mth(lo, lo + k), this.mth(lo + k, hi));
      this.memo.set(key, h);
    }
    return h;
  }

  root(n) {
    assert.ok(n <= this.leaves.length, `root(${n}) of a tree with ${this.leaves.length} leaves`);
    return this.mth(0, n);
  }

  // PATH(m, D[lo:hi]), m relative to lo.
  path(m, lo, hi) {
    const n = hi - lo;
    if (n === 1) return [];
    const k = splitPoint(n);
    if (m < k) return [...this.path(m, lo, lo + k), this.mth(lo + k, hi)];
    return [...this.path(m - k, lo + k, hi), this.mth(lo, lo + k)];
  }

  inclusionPath(m, n) {
    return this.path(m, 0, n);
  }

  // SUBPROOF(m, D[lo:hi], b)
  subproof(m, lo, hi, b) {
    const n = hi - lo;
    if (m === n) return b ? [] : [this.mth(lo, hi)];
    const k = splitPoint(n);
    if (m <= k) return [...this.subproof(m, lo, lo + k, b), this.mth(lo + k, hi)];
    return [...this.subproof(m - k, lo + k, hi, false), this.mth(lo, lo + k)];
  }

  consistencyProof(m, n) {
    return this.subproof(m, 0, n, true);
  }
}

// RFC 9162 §2.1.3.2: does `path` prove `leaf` at `index` in the tree of
// `size` whose root is `root`?
function verifyInclusion(index, size, leaf, path, root) {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
    return false;
  }
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (!(fn % 2 === 1 || fn === 0)) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

// RFC 9162 §2.1.4.2: does `proof` show that the tree of size `first` with
// root firstHash is a prefix of the tree of size `second` with secondHash?
// For first == second, PROOF is empty (§2.1.4.1) and the roots must be equal.
function verifyConsistency(first, second, firstHash, secondHash, proof) {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 1 ||
      first > second) {
    return false;
  }
  if (first === second) return proof.length === 0 && firstHash.equals(secondHash);
  if (proof.length === 0) return false;
  const path = isPow2(first) ? [firstHash, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (!(fn % 2 === 1 || fn === 0)) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return fr.equals(firstHash) && sr.equals(secondHash) && sn === 0;
}

// A copy of hash h with one bit flipped.
function flipBit(h, bit = 0) {
  const c = Buffer.from(h);
  c[Math.floor(bit / 8) % c.length] ^= 1 << (bit % 8);
  return c;
}

// ------------------------------------------------------------- entries

// FORMAT.md §1: exactly these members (and leaf_hash in the API).
const MEMBERS = ['actor', 'agreement', 'consumer', 'decision', 'detail', 'kind', 'outcome',
  'provider', 'purpose', 'reason', 'request', 'resident', 'seq', 'tenant', 'time'];
const TIME = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}Z$/;
const KIND = /^[a-z_]+(\.[a-z_]+)*$/;

const strOrNull = (v) => v === null || typeof v === 'string';
const objOrNull = (v) => v === null || (typeof v === 'object' && !Array.isArray(v));

// Checks one entry as the API or a JSON-lines export shows it, at position
// `pos`; returns its leaf hash (computed, and equal to the one shown).
function checkEntry(shown, pos, what) {
  const w = `${what}: entry at position ${pos}`;
  assert.ok(objOrNull(shown) && shown !== null, `${w} is an object`);
  assert.deepEqual(Object.keys(shown).sort(), [...MEMBERS, 'leaf_hash'].sort(),
    `${w}: exactly the members of FORMAT.md §1 and leaf_hash`);
  const { leaf_hash: leafB64, ...entry } = shown;
  assert.equal(entry.seq, pos, `${w}: seq equals its position (no gaps, no reordering)`);
  assert.match(entry.time, TIME, `${w}: time is RFC 3339 UTC with microseconds`);
  assert.match(entry.kind, KIND, `${w}: kind ${entry.kind}`);
  assert.ok(Buffer.byteLength(entry.kind) <= 64, `${w}: kind is at most 64 bytes`);
  for (const m of ['tenant', 'actor', 'reason', 'provider', 'agreement', 'purpose', 'resident']) {
    assert.ok(strOrNull(entry[m]), `${w}: ${m} is a string or null`);
  }
  assert.ok([null, 'permit', 'deny'].includes(entry.decision), `${w}: decision ${entry.decision}`);
  for (const m of ['consumer', 'request', 'outcome', 'detail']) {
    assert.ok(objOrNull(entry[m]), `${w}: ${m} is an object or null`);
  }
  if (entry.consumer !== null) {
    assert.deepEqual(Object.keys(entry.consumer).sort(), ['client', 'tenant'],
      `${w}: consumer is {tenant, client}`);
    assert.ok(strOrNull(entry.consumer.tenant) && strOrNull(entry.consumer.client),
      `${w}: consumer members are strings or null`);
  }
  let canonical;
  try {
    canonical = jcs(entry);
  } catch (err) {
    assert.fail(`${w}: outside FORMAT.md's value set: ${err.message}`);
  }
  const leaf = leafHashOf(Buffer.from(canonical, 'utf8'));
  assert.equal(leaf.toString('base64'), hashFromB64(leafB64, `${w}: leaf_hash`).toString('base64'),
    `${w}: leaf_hash is SHA-256(0x00 || JCS bytes) of ${canonical.slice(0, 200)}`);
  return leaf;
}

// Every entry through GET /audit/v1/entries with cursor paging.
async function fetchEntries(limit, what) {
  const token = await auditToken();
  const items = [];
  let cursor = null;
  let pages = 0;
  for (;;) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (cursor !== null) q.set('cursor', cursor);
    const body = await getJson(`/audit/v1/entries?${q}`, token, `${what}: page ${pages}`);
    pages++;
    assert.deepEqual(Object.keys(body).sort(), ['items', 'next'], `${what}: page {items, next}`);
    assert.ok(Array.isArray(body.items), `${what}: items is an array`);
    assert.ok(body.items.length <= limit, `${what}: at most limit=${limit} items`);
    items.push(...body.items);
    if (body.next === null) break;
    assert.equal(typeof body.next, 'string', `${what}: next is a string cursor or null`);
    assert.equal(body.items.length, limit, `${what}: a page with a next cursor is full`);
    assert.ok(pages < 10000, `${what}: paging ends`);
    cursor = body.next;
  }
  return { items, pages };
}

// What the tests share.
const created = []; // { id, name }: tenants test 1 created
const suspended = { id: null, reason: null };
const madeEarly = []; // checkpoints test 1 made on demand, in order
let entries = []; // the entries of the prefix fixed by test 2 (as shown, with leaf_hash)
let tree = null; // Tree over their leaf hashes
let N = 0; // entries.length at test 2
const roots = []; // roots[m] = MTH(D[m]) for m <= min(N, 320)

function need(value, what) {
  assert.ok(value, `${what} is missing: an earlier test failed`);
  return value;
}

// Fetches the log again (it only grows), checks that it still starts with
// `entries` and that every entry is well formed, and extends the tree.
async function refreshEntries(what) {
  const { items } = await fetchEntries(1000, what);
  assert.ok(items.length >= entries.length,
    `${what}: the log shrank from ${entries.length} to ${items.length} entries`);
  for (let i = 0; i < entries.length; i++) {
    assert.deepEqual(items[i], entries[i], `${what}: entry ${i} is unchanged (append-only)`);
  }
  const leaves = [...tree.leaves];
  for (let i = entries.length; i < items.length; i++) leaves.push(checkEntry(items[i], i, what));
  return { items, tree: new Tree(leaves) };
}

// ------------------------------------------------------------ checkpoints

const CP_MEMBERS = ['kid', 'root_hash', 'signature', 'time', 'tree_size'];

function checkpointMessage(cp) {
  return Buffer.from(
    `renkei audit checkpoint v1\n${cp.tree_size}\n${cp.root_hash}\n${cp.time}\n${cp.kid}\n`, 'utf8');
}

function checkCheckpointShape(cp, what) {
  assert.deepEqual(Object.keys(cp).sort(), CP_MEMBERS, `${what}: exactly the members of §4`);
  assert.ok(Number.isSafeInteger(cp.tree_size) && cp.tree_size >= 1, `${what}: tree_size`);
  hashFromB64(cp.root_hash, `${what}: root_hash`);
  assert.match(cp.time, TIME, `${what}: time`);
  assert.equal(typeof cp.kid, 'string', `${what}: kid`);
  assert.ok(cp.kid.startsWith('audit-'), `${what}: kid ${cp.kid} starts with audit-`);
  assert.match(cp.signature, /^[A-Za-z0-9+/]+={0,2}$/, `${what}: signature is base64`);
  assert.equal(Buffer.from(cp.signature, 'base64').length, 64, `${what}: signature is 64 bytes r||s`);
}

// The audit keys of the JWKS, imported once: kid -> CryptoKey.
let auditKeys = null;
async function loadAuditKeys() {
  const body = await getJson('/oauth2/jwks', undefined, 'GET /oauth2/jwks');
  assert.ok(Array.isArray(body.keys), 'JWKS: keys is an array');
  const keys = new Map();
  for (const jwk of body.keys.filter((k) => typeof k.kid === 'string' && k.kid.startsWith('audit-'))) {
    const w = `JWKS audit key ${jwk.kid}`;
    assert.equal(jwk.kty, 'EC', `${w}: kty`);
    assert.equal(jwk.crv, 'P-256', `${w}: crv`);
    assert.equal(jwk.alg, 'ES256', `${w}: alg`);
    assert.equal(jwk.use, 'sig', `${w}: use`);
    assert.ok(!('d' in jwk), `${w}: no private member d`);
    keys.set(jwk.kid, await subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' },
      false, ['verify']));
  }
  assert.ok(keys.size >= 1, 'JWKS: at least one audit- key');
  return keys;
}

async function signatureValid(key, cp, message = checkpointMessage(cp)) {
  return subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key,
    Buffer.from(cp.signature, 'base64'), message);
}

// ---------------------------------------------------------------- CSV

// RFC 4180 with CRLF record ends (a bare CR or LF outside quotes is an
// error); returns the records as arrays of strings.
function parseCsv(text) {
  const records = [];
  let record = [];
  let i = 0;
  const n = text.length;
  if (n === 0) return records;
  for (;;) {
    let field = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= n) throw new Error('CSV: unterminated quoted field');
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
          } else {
            i++;
            break;
          }
        } else {
          field += text[i++];
        }
      }
    } else {
      while (i < n && text[i] !== ',' && text[i] !== '\r' && text[i] !== '\n') {
        if (text[i] === '"') throw new Error(`CSV: a quote inside an unquoted field at ${i}`);
        field += text[i++];
      }
    }
    record.push(field);
    if (i >= n) throw new Error('CSV: the last record does not end in CRLF');
    if (text[i] === ',') {
      i++;
    } else if (text[i] === '\r' && text[i + 1] === '\n') {
      i += 2;
      records.push(record);
      record = [];
      if (i === n) return records;
    } else {
      throw new Error(`CSV: expected , or CRLF at offset ${i}, got ${JSON.stringify(text.slice(i, i + 10))}`);
    }
  }
}

const CSV_HEADER = ['seq', 'time', 'kind', 'decision', 'reason', 'consumer_tenant',
  'consumer_client', 'provider', 'agreement', 'purpose', 'resident', 'tenant', 'actor',
  'leaf_hash', 'entry'];

// The text of a CSV column for an entry (FORMAT.md §6): its member, empty
// for null, with a leading ' when it would start with = + - @ tab or CR.
const csvText = (s) => (/^[=+\-@\t\r]/.test(s) ? `'${s}` : s);
function csvCell(entry, column) {
  let v;
  if (column === 'consumer_tenant') v = entry.consumer?.tenant ?? null;
  else if (column === 'consumer_client') v = entry.consumer?.client ?? null;
  else v = entry[column];
  if (v === null || v === undefined) return '';
  return csvText(String(v));
}

// ============================================================== the tests

test('verifier self-test: RFC 6962 vectors; every proof of trees up to 40 leaves, and tampering fails', () => {
  // The CT test data of RFC 6962 implementations, with their published roots.
  const data = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657',
    '606162636465666768696a6b6c6d6e6f'].map((h) => Buffer.from(h, 'hex'));
  const published = [
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
    '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
    'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
    '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
  ];
  const ct = new Tree(data.map(leafHashOf));
  for (let n = 0; n <= 8; n++) assert.equal(hex(ct.root(n)), published[n], `RFC 6962 root of size ${n}`);
  assert.deepEqual(ct.inclusionPath(0, 8).map(hex), [
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
  ], 'RFC 6962 PATH(0, D[8])');

  // JCS of FORMAT.md §2's example and of the escapes JCS prescribes.
  assert.equal(jcs({ b: [1, 'x', null, true], a: { d: false, c: -3 }, A: '"\\\b\t\n\f\r\u0001\u001f/é😀\u2028' }),
    '{"A":"\\"\\\\\\b\\t\\n\\f\\r\\u0001\\u001f/é😀\u2028","a":{"c":-3,"d":false},"b":[1,"x",null,true]}');
  assert.equal(jcs({ '\u00e9': 1, '\ud83d\ude00': 2, z: 3 }), '{"z":3,"é":1,"😀":2}',
    'members sorted by UTF-16 code units');
  assert.throws(() => jcs({ x: 1.5 }), /not an integer/);

  const leaves = Array.from({ length: 41 }, (_, i) => leafHashOf(Buffer.from(`leaf ${i}`)));
  const t = new Tree(leaves);
  for (let n = 1; n <= 40; n++) {
    const root = t.root(n);
    for (let m = 0; m < n; m++) {
      const path = t.inclusionPath(m, n);
      assert.ok(verifyInclusion(m, n, leaves[m], path, root), `inclusion ${m} in ${n}`);
      assert.ok(!verifyInclusion(m, n, flipBit(leaves[m]), path, root), `wrong leaf ${m} in ${n}`);
      assert.ok(!verifyInclusion(m, n, leaves[m], path, flipBit(root, 77)), `wrong root ${m} in ${n}`);
      assert.ok(!verifyInclusion(m, n + 1, leaves[m], path, t.root(n + 1)), `root of ${n + 1} ${m} in ${n}`);
      assert.ok(!verifyInclusion(m, n, leaves[m], [...path, root], root), `extra hash ${m} in ${n}`);
      assert.ok(!verifyInclusion(n, n, leaves[m], path, root), `index = size ${n}`);
      if (path.length > 0) {
        const k = m % path.length;
        const bad = path.map((h, j) => (j === k ? flipBit(h, 200) : h));
        assert.ok(!verifyInclusion(m, n, leaves[m], bad, root), `tampered path ${m} in ${n}`);
        assert.ok(!verifyInclusion(m, n, leaves[m], path.slice(0, -1), root), `short path ${m} in ${n}`);
        if (n > 1 && m + 1 < n) {
          assert.ok(!verifyInclusion(m + 1, n, leaves[m], path, root), `wrong index ${m} in ${n}`);
        }
      }
    }
    for (let m = 1; m <= n; m++) {
      const proof = t.consistencyProof(m, n);
      assert.equal(proof.length === 0, m === n, `PROOF(${m}, D[${n}]) is empty only when m = n`);
      assert.ok(verifyConsistency(m, n, t.root(m), root, proof), `consistency ${m} ${n}`);
      assert.ok(!verifyConsistency(m, n, flipBit(t.root(m)), root, proof), `wrong first root ${m} ${n}`);
      assert.ok(!verifyConsistency(m, n, t.root(m), flipBit(root, 9), proof), `wrong second root ${m} ${n}`);
      if (proof.length > 0) {
        const k = (m + n) % proof.length;
        const bad = proof.map((h, j) => (j === k ? flipBit(h, 100) : h));
        assert.ok(!verifyConsistency(m, n, t.root(m), root, bad), `tampered proof ${m} ${n}`);
        assert.ok(!verifyConsistency(m, n, t.root(m), root, []), `empty proof ${m} ${n}`);
        assert.ok(!verifyConsistency(m, n, t.root(m), root, proof.slice(1)), `short proof ${m} ${n}`);
      }
    }
  }
});

test(`POST /admin/v1/tenants ${TENANTS_TO_CREATE} times, a suspension, a resumption, checkpoints on demand`, async (t) => {
  t.diagnostic(`random seed ${SEED} (set AUDIT_TEST_SEED to replay)`);
  const token = await auditToken();
  const run = randomBytes(4).toString('hex');
  // Names (in the entries' detail) that JCS and the CSV entry column must
  // get right: quotes, backslashes, commas, non-ASCII, characters outside
  // the BMP, U+2028, formula signs.
  const odd = ['="cmd"|x', '+1,2', '-1', '@SUM(A1)', 'a "quoted", back\\slash', '香川 😀 高松',
    'line\u2028sep', "it's", ' spaced ', 'a,b,c'];
  const todo = Array.from({ length: TENANTS_TO_CREATE }, (_, i) => ({
    id: `au_${i}_${run}`,
    name: i < odd.length ? odd[i] : `Audit test ${i} ${run}`,
  }));
  await pool(todo, CONCURRENCY, async (tn) => {
    const r = await http('/admin/v1/tenants', {
      token,
      method: 'POST',
      body: { id: tn.id, name: tn.name, city_os: { kind: 'hosted' } },
    });
    assert.equal(r.status, 201, `create ${tn.id}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    const body = parseJson(r, `create ${tn.id}`);
    assert.equal(body.id, tn.id, `create ${tn.id}: the reply names it`);
    assert.equal(r.headers.get('location'), `/admin/v1/tenants/${tn.id}`, `create ${tn.id}: Location`);
    created.push(tn);
  });
  assert.equal(created.length, TENANTS_TO_CREATE, 'every tenant was created');

  // A suspension with a reason, and the resumption: two more kinds of
  // entry; a checkpoint on demand before each and after (at least three
  // checkpoints of growing size for test 5).
  const checkpoint = async (what) => {
    const r = await http('/audit/v1/checkpoints', { token, method: 'POST' });
    assert.ok(r.status === 201 || r.status === 200, `checkpoint ${what}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    const cp = parseJson(r, `checkpoint ${what}`);
    if (madeEarly.length > 0) {
      assert.ok(cp.tree_size > madeEarly[madeEarly.length - 1].tree_size,
        `checkpoint ${what} covers the entry made since the one before (${cp.tree_size})`);
    }
    madeEarly.push(cp);
  };
  await checkpoint('after the creations');
  const sus = created[created.length - 1];
  suspended.id = sus.id;
  suspended.reason = `audit test: "unpaid", \\ ${run}`;
  let r = await http(`/admin/v1/tenants/${sus.id}`,
    { token, method: 'PATCH', body: { state: 'suspended', reason: suspended.reason } });
  assert.equal(r.status, 200, `suspend ${sus.id}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  await checkpoint('after the suspension');
  r = await http(`/admin/v1/tenants/${sus.id}`, { token, method: 'PATCH', body: { state: 'active' } });
  assert.equal(r.status, 200, `resume ${sus.id}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  await checkpoint('after the resumption');
});

test('GET /audit/v1/entries: every entry, leaf hashes from JCS bytes, seq 0..N-1', async (t) => {
  need(created.length === TENANTS_TO_CREATE, 'the created tenants');
  const actor = `client:${AUDIT_CLIENT_ID}`;
  // The tenants' entries are in the log once their creation answered; allow
  // a little time anyway (an appender may batch), then require all of them.
  const deadline = Date.now() + 10000;
  let items;
  let missing;
  for (;;) {
    ({ items } = await fetchEntries(1000, 'entries limit=1000'));
    const seen = new Set(items.filter((e) => e?.kind === 'tenant.create').map((e) => e.tenant));
    missing = created.filter((tn) => !seen.has(tn.id));
    if (missing.length === 0 || Date.now() > deadline) break;
    await sleep(200);
  }
  assert.equal(missing.length, 0,
    `every tenant.create is in the log (missing ${missing.slice(0, 5).map((m) => m.id).join(', ')}...)`);

  N = items.length;
  assert.ok(N > 300, `the log has more than 300 entries (${N})`);
  const leaves = items.map((e, i) => checkEntry(e, i, 'entries limit=1000'));
  entries = items;
  tree = new Tree(leaves);
  t.diagnostic(`the log has ${N} entries`);

  // What the hub recorded of what this test did.
  const byTenant = new Map();
  for (const e of items) {
    if (e.actor === actor) {
      const list = byTenant.get(e.tenant) ?? [];
      list.push(e);
      byTenant.set(e.tenant, list);
    }
  }
  for (const tn of created) {
    const mine = byTenant.get(tn.id) ?? [];
    const creates = mine.filter((e) => e.kind === 'tenant.create');
    assert.equal(creates.length, 1, `one tenant.create entry by ${actor} for ${tn.id}`);
    const d = creates[0].detail;
    assert.ok(d && d.id === tn.id && d.name === tn.name,
      `tenant.create ${tn.id}: detail names id and name ${JSON.stringify(tn.name)}: ${JSON.stringify(d)}`);
  }
  const sus = (byTenant.get(suspended.id) ?? []).map((e) => e.kind);
  assert.deepEqual(sus, ['tenant.create', 'tenant.suspend', 'tenant.resume'],
    `the entries of ${suspended.id} in seq order`);
  const suspendEntry = byTenant.get(suspended.id)[1];
  assert.equal(suspendEntry.detail?.reason, suspended.reason, 'tenant.suspend carries the reason');

  // Small pages give the same entries.
  const small = await fetchEntries(37, 'entries limit=37');
  assert.ok(small.pages >= Math.ceil(N / 37), `limit=37 took ${small.pages} pages`);
  assert.ok(small.items.length >= N, 'limit=37 paging reaches every entry');
  assert.deepEqual(small.items.slice(0, N), entries, 'limit=37 paging shows the same entries');

  const token = await auditToken();
  for (const [q, what] of [['limit=0', 'limit 0'], ['limit=1001', 'limit above 1000'],
    ['cursor=abc', 'a cursor the API never gave'], ['format=xml', 'an unknown format']]) {
    assertErrorReply(await http(`/audit/v1/entries?${q}`, { token }), 400, `entries?${q} (${what})`);
  }
});

test('inclusion proofs (RFC 9162 §2.1.3.2) for every tree size 1..300 against our own roots', async (t) => {
  need(tree, 'the entries');
  const top = Math.min(N, 320);
  for (let m = 1; m <= top; m++) roots[m] = tree.root(m);
  // The roots are a chain of prefixes: each differs from the next.
  for (let m = 1; m < top; m++) assert.ok(!roots[m].equals(roots[m + 1]), `roots of ${m} and ${m + 1} differ`);

  const asks = [];
  for (let m = 1; m <= 300; m++) {
    const seqs = new Set(m <= 40 ? Array.from({ length: m }, (_, i) => i) : [0, m - 1, randInt(0, m - 1)]);
    for (const s of seqs) asks.push([s, m]);
  }
  const token = await auditToken();
  let verified = 0;
  await pool(asks, CONCURRENCY, async ([s, m]) => {
    const what = `inclusion seq=${s} tree_size=${m}`;
    const body = await getJson(`/audit/v1/proofs/inclusion?seq=${s}&tree_size=${m}`, token, what);
    assert.deepEqual(Object.keys(body).sort(), ['hashes', 'leaf_index', 'tree_size'], `${what}: members`);
    assert.equal(body.leaf_index, s, `${what}: leaf_index`);
    assert.equal(body.tree_size, m, `${what}: tree_size`);
    assert.ok(Array.isArray(body.hashes), `${what}: hashes is an array`);
    const path = body.hashes.map((h, i) => hashFromB64(h, `${what}: hashes[${i}]`));
    const leaf = tree.leaves[s];
    assert.ok(verifyInclusion(s, m, leaf, path, roots[m]), `${what}: verifies against our MTH(D[${m}])`);
    assert.deepEqual(path.map(hex), tree.inclusionPath(s, m).map(hex), `${what}: is PATH(${s}, D[${m}])`);
    // The verifier can fail: another leaf, another root, another index.
    assert.ok(!verifyInclusion(s, m, tree.leaves[(s + 1) % N], path, roots[m]), `${what}: not for another leaf`);
    assert.ok(!verifyInclusion(s, m, leaf, path, roots[m + 1]), `${what}: not against the root of ${m + 1}`);
    if (m > 1) {
      assert.ok(!verifyInclusion((s + 1) % m, m, leaf, path, roots[m]), `${what}: not at another index`);
    }
    verified++;
  });
  assert.equal(verified, asks.length, `${asks.length} inclusion proofs verified`);
  t.diagnostic(`${verified} inclusion proofs verified`);

  for (const [q, what] of [
    ['seq=5&tree_size=5', 'seq = tree_size'],
    ['seq=0&tree_size=0', 'tree_size 0'],
    [`seq=0&tree_size=${2 ** 40}`, 'a tree larger than the log'],
    ['tree_size=5', 'no seq'],
    ['seq=0', 'no tree_size'],
    ['seq=-1&tree_size=5', 'a negative seq'],
  ]) {
    assertErrorReply(await http(`/audit/v1/proofs/inclusion?${q}`, { token }), 400, `inclusion ${q} (${what})`);
  }
});

test('consistency proofs (RFC 9162 §2.1.4.2) for 200 pairs of tree sizes', async () => {
  need(tree, 'the entries');
  const size = N;
  const pairs = [[1, 1], [1, 2], [1, size], [size, size], [2, size], [64, size], [256, size],
    [3, 7], [4, 8], [size - 1, size], [1, 300], [300, 300], [127, 128], [128, 129]];
  const seen = new Set(pairs.map(([a, b]) => `${a},${b}`));
  while (pairs.length < 200) {
    const b = randInt(1, size);
    const a = pairs.length % 10 === 0 ? b : randInt(1, b);
    if (!seen.has(`${a},${b}`)) {
      seen.add(`${a},${b}`);
      pairs.push([a, b]);
    }
  }
  const token = await auditToken();
  let verified = 0;
  await pool(pairs, CONCURRENCY, async ([m, n]) => {
    const what = `consistency first=${m} second=${n}`;
    const body = await getJson(`/audit/v1/proofs/consistency?first=${m}&second=${n}`, token, what);
    assert.deepEqual(Object.keys(body).sort(), ['first', 'hashes', 'second'], `${what}: members`);
    assert.equal(body.first, m, `${what}: first`);
    assert.equal(body.second, n, `${what}: second`);
    assert.ok(Array.isArray(body.hashes), `${what}: hashes is an array`);
    const proof = body.hashes.map((h, i) => hashFromB64(h, `${what}: hashes[${i}]`));
    const r1 = tree.root(m);
    const r2 = tree.root(n);
    assert.ok(verifyConsistency(m, n, r1, r2, proof), `${what}: verifies against our roots`);
    assert.deepEqual(proof.map(hex), tree.consistencyProof(m, n).map(hex), `${what}: is PROOF(${m}, D[${n}])`);
    assert.ok(!verifyConsistency(m, n, flipBit(r1, 5), r2, proof), `${what}: not with another first root`);
    assert.ok(!verifyConsistency(m, n, r1, flipBit(r2, 250), proof), `${what}: not with another second root`);
    if (proof.length > 0) {
      const k = randInt(0, proof.length - 1);
      const bad = proof.map((h, j) => (j === k ? flipBit(h, 31) : h));
      assert.ok(!verifyConsistency(m, n, r1, r2, bad), `${what}: not with hashes[${k}] changed`);
    }
    verified++;
  });
  assert.equal(verified, 200, '200 consistency proofs verified');
  assert.ok(pairs.some(([a, b]) => a === b) && pairs.some(([a]) => a === 1) &&
    pairs.some(([, b]) => b === size), 'the pairs include M = N, M = 1 and N = size');

  for (const [q, what] of [
    ['first=5&second=4', 'first > second'],
    ['first=0&second=4', 'first 0'],
    [`first=1&second=${2 ** 40}`, 'a tree larger than the log'],
    ['second=4', 'no first'],
  ]) {
    assertErrorReply(await http(`/audit/v1/proofs/consistency?${q}`, { token }), 400,
      `consistency ${q} (${what})`);
  }
});

test('checkpoints: ES256 signatures with the published audit key, roots equal to our MTH', async (t) => {
  need(tree, 'the entries');
  const token = await auditToken();

  const r = await http('/audit/v1/checkpoints', { token, method: 'POST' });
  assert.ok(r.status === 201 || r.status === 200, `POST /audit/v1/checkpoints: HTTP ${r.status} ${r.text}`);
  const made = parseJson(r, 'POST /audit/v1/checkpoints');
  checkCheckpointShape(made, 'the checkpoint made');
  assert.ok(made.tree_size >= N, `the checkpoint made covers the ${N} entries we read (${made.tree_size})`);

  const latest = await getJson('/audit/v1/checkpoints/latest', token);
  checkCheckpointShape(latest, 'the latest checkpoint');
  assert.ok(latest.tree_size >= made.tree_size, 'the latest checkpoint is at least the one made');

  auditKeys = await loadAuditKeys();
  const key = auditKeys.get(latest.kid);
  assert.ok(key, `the JWKS has the latest checkpoint's key ${latest.kid}`);

  // The audit key is the log's own, never the key that signs access tokens.
  const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString());
  assert.ok(!String(header.kid).startsWith('audit-'), `access tokens are not signed with an audit key (${header.kid})`);

  // Entries may have arrived since test 2: read the log again (it must
  // still start with what we read) so that our tree covers the checkpoints.
  let ext = await refreshEntries('entries for the checkpoints');
  assert.ok(ext.items.length >= latest.tree_size,
    `the log has the ${latest.tree_size} entries the latest checkpoint covers (${ext.items.length})`);

  const message = checkpointMessage(latest);
  assert.ok(await signatureValid(key, latest, message), 'the latest checkpoint signature verifies');
  assert.equal(latest.root_hash, ext.tree.root(latest.tree_size).toString('base64'),
    `the latest checkpoint's root is our MTH(D[${latest.tree_size}])`);
  // The verifier can fail: any one bit of the message, another tree size.
  for (const bit of [0, 7, 8 * 27 + 1, (message.length - 1) * 8, randInt(0, message.length * 8 - 1)]) {
    const bad = Buffer.from(message);
    bad[Math.floor(bit / 8)] ^= 1 << (bit % 8);
    assert.ok(!(await signatureValid(key, latest, bad)), `a flipped bit ${bit} of the message fails`);
  }
  assert.ok(!(await signatureValid(key, { ...latest, tree_size: latest.tree_size - 1 })),
    'the signature does not verify for another tree size');
  const sig = Buffer.from(latest.signature, 'base64');
  sig[40] ^= 0x10;
  assert.ok(!(await signatureValid(key, { ...latest, signature: sig.toString('base64') })),
    'a changed signature fails');

  // Every checkpoint, paged with after/next.
  const all = [];
  let after = null;
  let pages = 0;
  for (;;) {
    const q = new URLSearchParams({ limit: '2' });
    if (after !== null) q.set('after', after);
    const body = await getJson(`/audit/v1/checkpoints?${q}`, token, `checkpoints page ${pages}`);
    pages++;
    assert.deepEqual(Object.keys(body).sort(), ['items', 'next'], 'checkpoints page {items, next}');
    assert.ok(Array.isArray(body.items) && body.items.length <= 2, 'checkpoints: at most limit items');
    for (const cp of body.items) {
      if (after !== null) assert.ok(cp.tree_size > Number(after), `checkpoint ${cp.tree_size} is after ${after}`);
    }
    all.push(...body.items);
    if (body.next === null) break;
    assert.equal(body.items.length, 2, 'a checkpoints page with next is full');
    assert.equal(String(body.next), String(body.items[1].tree_size), 'next is the last tree size');
    assert.ok(pages < 10000, 'checkpoint paging ends');
    after = body.next;
  }
  assert.ok(all.length >= 3, `the checkpoints made on demand are there (${all.length})`);
  assert.ok(pages >= 2, `the checkpoints took ${pages} pages of 2`);
  for (let i = 1; i < all.length; i++) {
    assert.ok(all[i].tree_size > all[i - 1].tree_size, `checkpoint tree sizes increase (${i})`);
  }
  for (const cp of [...need(madeEarly.length === 3 && madeEarly, 'the early checkpoints'), made]) {
    assert.ok(all.some((c) => c.tree_size === cp.tree_size && c.root_hash === cp.root_hash &&
      c.signature === cp.signature && c.time === cp.time && c.kid === cp.kid),
    `the checkpoint made at tree size ${cp.tree_size} is listed as it was returned`);
  }
  assert.ok(all.some((cp) => cp.tree_size === latest.tree_size && cp.root_hash === latest.root_hash),
    'the latest checkpoint is listed');

  const maxSize = all[all.length - 1].tree_size;
  if (maxSize > ext.items.length) ext = await refreshEntries('entries for every checkpoint');
  let checked = 0;
  for (const cp of all) {
    const what = `checkpoint tree_size=${cp.tree_size}`;
    checkCheckpointShape(cp, what);
    const k = auditKeys.get(cp.kid);
    assert.ok(k, `${what}: its key ${cp.kid} is in the JWKS`);
    assert.ok(await signatureValid(k, cp), `${what}: the signature verifies`);
    assert.ok(cp.tree_size <= ext.items.length, `${what}: the log has its entries`);
    assert.equal(cp.root_hash, ext.tree.root(cp.tree_size).toString('base64'), `${what}: root is our MTH`);
    checked++;
  }
  assert.equal(checked, all.length, `${all.length} checkpoints verified`);
  t.diagnostic(`${all.length} checkpoints verified (${pages} pages), up to tree size ${maxSize}`);

  // Consecutive checkpoints are consistent, by the hub's proofs against
  // the signed roots alone.
  for (let i = 1; i < all.length; i++) {
    const [a, b] = [all[i - 1], all[i]];
    const what = `consistency between checkpoints ${a.tree_size} and ${b.tree_size}`;
    const body = await getJson(`/audit/v1/proofs/consistency?first=${a.tree_size}&second=${b.tree_size}`, token, what);
    const proof = body.hashes.map((h, j) => hashFromB64(h, `${what}: hashes[${j}]`));
    assert.ok(verifyConsistency(a.tree_size, b.tree_size, Buffer.from(a.root_hash, 'base64'),
      Buffer.from(b.root_hash, 'base64'), proof), `${what}: verifies`);
  }
});

test('format=jsonl: the same entries, each line checks', async () => {
  need(tree, 'the entries');
  const token = await auditToken();
  const r = await http(`/audit/v1/entries?format=jsonl&limit=${N}`, { token });
  assert.equal(r.status, 200, `jsonl export: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/jsonl/, 'jsonl Content-Type');
  assert.ok(r.text.endsWith('\n'), 'the export ends with a newline');
  const lines = r.text.slice(0, -1).split('\n');
  assert.equal(lines.length, N, `format=jsonl&limit=${N} has ${N} lines`);
  lines.forEach((line, i) => {
    let e;
    try {
      e = JSON.parse(line);
    } catch (err) {
      assert.fail(`jsonl line ${i + 1} is not JSON: ${err.message}: ${line.slice(0, 200)}`);
    }
    const leaf = checkEntry(e, i, 'jsonl');
    assert.ok(leaf.equals(tree.leaves[i]), `jsonl line ${i + 1}: the leaf of entry ${i}`);
    assert.deepEqual(e, entries[i], `jsonl line ${i + 1}: the entry the JSON API shows`);
  });

  // Unlimited, the export has at least as many (the log may have grown).
  const all = await http('/audit/v1/entries?format=jsonl', { token });
  assert.equal(all.status, 200, `unlimited jsonl: HTTP ${all.status}`);
  const allLines = all.text.split('\n');
  assert.equal(allLines.pop(), '', 'the unlimited export ends with a newline');
  assert.ok(allLines.length >= N, `the unlimited export has at least ${N} lines (${allLines.length})`);
  allLines.forEach((line, i) => {
    const leaf = checkEntry(JSON.parse(line), i, 'unlimited jsonl');
    if (i < N) assert.ok(leaf.equals(tree.leaves[i]), `unlimited jsonl line ${i + 1}: the leaf of entry ${i}`);
  });
});

test('format=csv: RFC 4180, the header of FORMAT.md §6, entry bytes hash to leaf_hash', async () => {
  need(tree, 'the entries');
  const token = await auditToken();
  const r = await http(`/audit/v1/entries?format=csv&limit=${N}`, { token });
  assert.equal(r.status, 200, `csv export: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  assert.match(r.headers.get('content-type') ?? '', /^text\/csv/, 'csv Content-Type');
  let records;
  try {
    records = parseCsv(r.text);
  } catch (err) {
    assert.fail(`the CSV export is not RFC 4180 with CRLF: ${err.message}`);
  }
  assert.deepEqual(records[0], CSV_HEADER, 'the CSV header');
  assert.equal(records.length - 1, N, `format=csv&limit=${N} has ${N} records`);
  for (let i = 0; i < N; i++) {
    const rec = records[i + 1];
    const what = `csv record ${i + 1}`;
    assert.equal(rec.length, CSV_HEADER.length, `${what}: ${CSV_HEADER.length} fields`);
    const cell = Object.fromEntries(CSV_HEADER.map((c, j) => [c, rec[j]]));
    const bytes = Buffer.from(cell.entry, 'utf8');
    const leaf = leafHashOf(bytes);
    // A base64 hash may start with + and then carries the formula guard '.
    assert.equal(cell.leaf_hash, csvText(entries[i].leaf_hash), `${what}: the leaf_hash column`);
    const shownLeaf = hashFromB64(cell.leaf_hash.replace(/^'(?=[=+\-@\t\r])/, ''), `${what}: leaf_hash`);
    assert.equal(leaf.toString('base64'), shownLeaf.toString('base64'),
      `${what}: SHA-256(0x00 || entry) is the leaf_hash column`);
    assert.ok(leaf.equals(tree.leaves[i]), `${what}: the leaf of entry ${i}`);
    let e;
    try {
      e = JSON.parse(cell.entry);
    } catch (err) {
      assert.fail(`${what}: the entry column is not JSON: ${err.message}`);
    }
    assert.equal(jcs(e), cell.entry, `${what}: the entry column is in canonical form`);
    const { leaf_hash: _ignored, ...shown } = entries[i];
    assert.deepEqual(e, shown, `${what}: the entry the JSON API shows`);
    for (const col of CSV_HEADER.slice(0, -2)) {
      assert.equal(cell[col], csvCell(e, col), `${what}: column ${col} repeats the entry`);
    }
  }
});

test('without a token: 401; without scope audit.read: 403', async () => {
  const other = await clientToken(CLIENT_ID, CLIENT_SECRET, 'ngsi.read ngsi.write');
  const endpoints = [
    ['GET', '/audit/v1/entries'],
    ['GET', '/audit/v1/entries?format=jsonl'],
    ['GET', '/audit/v1/entries?format=csv'],
    ['GET', '/audit/v1/checkpoints'],
    ['POST', '/audit/v1/checkpoints'],
    ['GET', '/audit/v1/checkpoints/latest'],
    ['GET', '/audit/v1/proofs/inclusion?seq=0&tree_size=1'],
    ['GET', '/audit/v1/proofs/consistency?first=1&second=1'],
  ];
  for (const [method, path] of endpoints) {
    let r = await http(path, { method });
    assertErrorReply(r, 401, `${method} ${path} without a token`);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer\b/, `${method} ${path}: a Bearer challenge`);

    r = await http(path, { method, token: `${other}x` });
    assert.equal(r.status, 401, `${method} ${path} with a broken token: HTTP ${r.status}`);

    r = await http(path, { method, token: other });
    assertErrorReply(r, 403, `${method} ${path} with takamatsu's ngsi token`);
  }
});
