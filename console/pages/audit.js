// The auditor console's verification (GET /audit). It checks, in the
// browser and without trusting anything the hub says, that the entries on
// the page (or every entry this auditor may see) are in the log that the
// latest signed checkpoint commits to:
//   - the checkpoint's ECDSA P-256 signature, with the audit key the hub
//     publishes at /oauth2/jwks (WebCrypto);
//   - each entry's leaf hash, recomputed from the entry's canonical bytes
//     (audit/FORMAT.md §2: RFC 8785 JCS, SHA-256 over 0x00 || bytes);
//   - each entry's inclusion proof against the checkpoint's root
//     (RFC 9162 §2.1.3.2), using the recomputed leaf hash, never the hub's;
//   - a consistency proof (RFC 9162 §2.1.4.2) from the checkpoint this
//     browser verified last (kept in localStorage: a checkpoint is public,
//     signed data, not a credential), or else the oldest one, to the latest.
// Then it says plainly, in the role="status" region, whether the log is
// intact, and if not, the first failing entry and why. Its words come from
// the page's catalogue (the <template id="verify-msgs">).
'use strict';

(() => {
  const root = document.getElementById('verify');
  const tpl = document.getElementById('verify-msgs');
  if (!root || !tpl) return;
  const btnPage = document.getElementById('verify-page');
  const btnAll = document.getElementById('verify-all');
  const status = document.getElementById('verify-status');
  const progress = document.getElementById('verify-progress');
  const subtle = window.crypto && window.crypto.subtle;

  // the last checkpoint verified here, with the key that signed it: the one
  // thing this check holds that the hub cannot change afterwards
  const STORE = 'renkei.audit.checkpoint.v2';
  const CONCURRENCY = 6; // inclusion proofs asked for at a time
  const MAX_DEPTH = 32; // nesting of an entry's values
  const MEMBERS = ['actor', 'agreement', 'consumer', 'decision', 'detail', 'kind', 'outcome',
    'provider', 'purpose', 'reason', 'request', 'resident', 'seq', 'tenant', 'time'];

  // ---- words

  const words = new Map();
  for (const p of tpl.content.querySelectorAll('[data-k]')) {
    words.set(p.getAttribute('data-k'), p.textContent.trim());
  }
  // The catalogue's text for key with its {placeholders} filled from vars.
  function say(key, vars = {}) {
    const text = words.get(key) ?? key;
    return text.replace(/\{([a-z_]+)\}/g, (m, name) =>
      (Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : m));
  }

  // A verdict: the log is not intact (seq: the entry, when one is at fault).
  class Failure extends Error {
    constructor(key, vars = {}, seq = null) {
      super(key);
      this.key = key;
      this.vars = vars;
      this.seq = seq;
    }
  }
  // No verdict: the check could not be completed (network, no checkpoint).
  class Trouble extends Error {
    constructor(key, vars = {}) {
      super(key);
      this.key = key;
      this.vars = vars;
    }
  }

  // ---- bytes and hashes

  const utf8 = new TextEncoder();

  function fromB64(s) {
    if (typeof s !== 'string' || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
      return null;
    }
    let bin;
    try {
      bin = atob(s);
    } catch {
      return null;
    }
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function toB64(bytes) {
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  // A hash as the API shows it: base64 of exactly 32 bytes.
  function hashOf(s) {
    const b = fromB64(s);
    return b && b.length === 32 ? b : null;
  }

  function same(a, b) {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }

  async function sha256(...parts) {
    let n = 0;
    for (const p of parts) n += p.length;
    const all = new Uint8Array(n);
    let off = 0;
    for (const p of parts) {
      all.set(p, off);
      off += p.length;
    }
    return new Uint8Array(await subtle.digest('SHA-256', all));
  }

  const LEAF = Uint8Array.of(0);
  const NODE = Uint8Array.of(1);
  const leafHash = (bytes) => sha256(LEAF, bytes);
  const nodeHash = (left, right) => sha256(NODE, left, right);

  // RFC 8785 over FORMAT.md §1's values: objects, arrays, strings, true,
  // false, null, integers below 2^53. JSON.stringify escapes a string as
  // JCS does; sort() orders names by UTF-16 code units, as JCS does.
  function canonical(v, depth = 0) {
    if (depth > MAX_DEPTH) throw new Error('too deep');
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new Error('not an integer below 2^53');
      return String(v);
    }
    if (Array.isArray(v)) return `[${v.map((x) => canonical(x, depth + 1)).join(',')}]`;
    if (typeof v === 'object') {
      return `{${Object.keys(v).sort()
        .map((k) => `${JSON.stringify(k)}:${canonical(v[k], depth + 1)}`).join(',')}}`;
    }
    throw new Error(`${typeof v} is not an entry value`);
  }

  // ---- RFC 9162 §2.1.3.2 and §2.1.4.2, with sizes below 2^53

  const half = (x) => Math.floor(x / 2);
  const odd = (x) => x % 2 === 1;
  function isPow2(x) {
    while (x > 1 && !odd(x)) x = half(x);
    return x === 1;
  }

  async function inclusionOk(index, size, leaf, path, rootHash) {
    if (index >= size) return false;
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of path) {
      if (sn === 0) return false;
      if (odd(fn) || fn === sn) {
        r = await nodeHash(p, r);
        if (!odd(fn)) {
          while (!(odd(fn) || fn === 0)) {
            fn = half(fn);
            sn = half(sn);
          }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = half(fn);
      sn = half(sn);
    }
    return sn === 0 && same(r, rootHash);
  }

  async function consistencyOk(first, second, firstHash, secondHash, proof) {
    if (first < 1 || first > second) return false;
    if (first === second) return proof.length === 0 && same(firstHash, secondHash);
    if (proof.length === 0) return false;
    const path = isPow2(first) ? [firstHash, ...proof] : [...proof];
    let fn = first - 1;
    let sn = second - 1;
    while (odd(fn)) {
      fn = half(fn);
      sn = half(sn);
    }
    let fr = path[0];
    let sr = path[0];
    for (const c of path.slice(1)) {
      if (sn === 0) return false;
      if (odd(fn) || fn === sn) {
        fr = await nodeHash(c, fr);
        sr = await nodeHash(c, sr);
        if (!odd(fn)) {
          while (!(odd(fn) || fn === 0)) {
            fn = half(fn);
            sn = half(sn);
          }
        }
      } else {
        sr = await nodeHash(sr, c);
      }
      fn = half(fn);
      sn = half(sn);
    }
    return sn === 0 && same(fr, firstHash) && same(sr, secondHash);
  }

  // ---- the hub

  async function fetchOk(path) {
    let res;
    try {
      res = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
    } catch (err) {
      throw new Trouble('why.http', { why: err.message });
    }
    if (!res.ok) throw new Trouble('why.http', { why: `HTTP ${res.status} ${path.split('?')[0]}` });
    return res;
  }

  async function getJson(path) {
    const res = await fetchOk(path);
    try {
      return await res.json();
    } catch {
      throw new Trouble('why.http', { why: `${path.split('?')[0]}: not JSON` });
    }
  }

  async function latestCheckpoint() {
    let res;
    try {
      res = await fetch('/audit/v1/checkpoints/latest', { credentials: 'same-origin', cache: 'no-store' });
    } catch (err) {
      throw new Trouble('why.http', { why: err.message });
    }
    if (res.status === 404) throw new Trouble('why.no_checkpoint');
    if (!res.ok) throw new Trouble('why.http', { why: `HTTP ${res.status} /audit/v1/checkpoints/latest` });
    return res.json();
  }

  // The audit log's public keys (kid "audit-..."), as JWKs.
  async function auditKeys() {
    const jwks = await getJson('/oauth2/jwks');
    const keys = Array.isArray(jwks.keys) ? jwks.keys : [];
    return keys.filter((k) => k && typeof k.kid === 'string' && k.kid.startsWith('audit-') &&
      k.kty === 'EC' && k.crv === 'P-256');
  }

  function checkpointShape(cp) {
    return cp && typeof cp === 'object' && Number.isSafeInteger(cp.tree_size) &&
      cp.tree_size >= 0 && hashOf(cp.root_hash) !== null && typeof cp.time === 'string' &&
      typeof cp.kid === 'string' && !/\n/.test(cp.time + cp.kid) &&
      (fromB64(cp.signature) || []).length === 64;
  }

  // FORMAT.md §4: the signature covers five lines.
  async function verifyCheckpoint(cp, keys) {
    if (!checkpointShape(cp)) throw new Failure('why.checkpoint');
    const jwk = keys.find((k) => k.kid === cp.kid);
    if (!jwk) throw new Failure('why.no_key', { kid: cp.kid });
    let ok = false;
    try {
      const key = await subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y },
        { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
      const msg = utf8.encode(
        `renkei audit checkpoint v1\n${cp.tree_size}\n${cp.root_hash}\n${cp.time}\n${cp.kid}\n`);
      ok = await subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, fromB64(cp.signature), msg);
    } catch {
      ok = false;
    }
    if (!ok) throw new Failure('why.signature', { size: cp.tree_size });
  }

  // RFC 7638 thumbprint of an EC key: to compare with one read elsewhere
  // (renkei audit verify-file --jwks, the operator's published copy).
  async function thumbprint(jwk) {
    const json = `{"crv":"P-256","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`;
    const digest = new Uint8Array(await subtle.digest('SHA-256', utf8.encode(json)));
    return toB64(digest).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  // The checkpoint to prove consistency from: the last one verified in this
  // browser (checked with the key kept beside it), else the log's oldest.
  // The hub's audit keys are never withdrawn (audit/FORMAT.md §4): a kept
  // key that is gone from /oauth2/jwks, or published with other numbers,
  // is a failure, not something to forget.
  async function baseline(keys) {
    let kept = null;
    try {
      kept = JSON.parse(localStorage.getItem(STORE) || 'null');
    } catch {
      kept = null;
    }
    const key = kept && kept.key;
    if (kept && checkpointShape(kept.cp) && kept.cp.tree_size > 0 && key &&
        typeof key.x === 'string' && typeof key.y === 'string' && key.kid === kept.cp.kid) {
      let ours = true;
      try {
        await verifyCheckpoint(kept.cp, [{ ...key, kty: 'EC', crv: 'P-256' }]);
      } catch {
        ours = false; // this browser's storage is damaged, not the hub's log
      }
      if (ours) {
        const served = keys.find((k) => k.kid === key.kid);
        if (!served) throw new Failure('why.key_gone', { kid: key.kid });
        if (served.x !== key.x || served.y !== key.y) {
          throw new Failure('why.key_changed', { kid: key.kid });
        }
        return { cp: kept.cp, kept: true };
      }
      localStorage.removeItem(STORE);
    }
    const list = await getJson('/audit/v1/checkpoints?limit=1');
    const oldest = Array.isArray(list.items) ? list.items[0] : null;
    if (!oldest) return null;
    await verifyCheckpoint(oldest, keys);
    return { cp: oldest, kept: false };
  }

  async function checkConsistency(base, latest) {
    const m = base.tree_size;
    const n = latest.tree_size;
    if (m > n) throw new Failure('why.shrunk', { first: m, size: n });
    let hashes = [];
    if (m < n) {
      const proof = await getJson(`/audit/v1/proofs/consistency?first=${m}&second=${n}`);
      hashes = Array.isArray(proof.hashes) ? proof.hashes.map(hashOf) : [null];
      if (proof.first !== m || proof.second !== n || hashes.includes(null)) {
        throw new Failure('why.consistency', { first: m, size: n });
      }
    }
    if (!(await consistencyOk(m, n, hashOf(base.root_hash), hashOf(latest.root_hash), hashes))) {
      throw new Failure('why.consistency', { first: m, size: n });
    }
  }

  // The lines of a JSON-lines body, read as it streams in.
  async function readLines(path, onLine) {
    const res = await fetchOk(path);
    const reader = res.body.getReader();
    const decoder = new TextDecoder('utf-8', { fatal: false });
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      rest += done ? decoder.decode() : decoder.decode(value, { stream: true });
      let nl;
      while ((nl = rest.indexOf('\n')) >= 0) {
        onLine(rest.slice(0, nl));
        rest = rest.slice(nl + 1);
      }
      if (done) break;
    }
    if (rest.length) onLine(rest);
  }

  // ---- the run

  function setProgress(done, total) {
    progress.max = Math.max(total, 1);
    progress.value = done;
    progress.textContent = say('progress', { done, total });
  }

  function show(kind, lines) {
    status.className = `status ${kind}`;
    status.replaceChildren(...lines.map((text, i) => {
      const p = document.createElement('p');
      if (i === 0) p.className = 'verdict';
      p.textContent = text;
      return p;
    }));
  }

  // fn over items, at most n at a time.
  async function pool(items, n, fn) {
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    };
    await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  }

  // The entries to check: { seq, line } in the order the hub sent them.
  async function entriesOnPage(failures) {
    const rows = [...document.querySelectorAll('#entries tbody tr[data-seq]')];
    const shown = rows.map((tr) => Number(tr.getAttribute('data-seq')));
    const lines = [];
    await readLines(root.getAttribute('data-api-page'), (line) => {
      if (line.trim()) lines.push(line);
    });
    // the same query as the table: line i is row i (the log only appends)
    const out = [];
    for (let i = 0; i < shown.length; i++) {
      if (i < lines.length) out.push({ seq: shown[i], line: lines[i], expect: shown[i] });
      else failures.push(new Failure('why.missing', {}, shown[i]));
    }
    return out;
  }

  async function everyEntry() {
    const out = [];
    await readLines('/audit/v1/entries?format=jsonl', (line) => {
      if (line.trim()) {
        out.push({ seq: null, line, expect: null });
        if (out.length % 500 === 0) setProgress(0, out.length);
      }
    });
    return out;
  }

  // Parses and hashes one entry; a Failure for anything wrong with it.
  async function leafOf(item, prevSeq) {
    let shown;
    try {
      shown = JSON.parse(item.line);
    } catch {
      throw new Failure('why.malformed', {}, item.expect ?? (prevSeq === null ? '?' : `${prevSeq}+`));
    }
    if (!shown || typeof shown !== 'object' || Array.isArray(shown)) {
      throw new Failure('why.malformed', {}, item.expect ?? '?');
    }
    const { leaf_hash: stated, ...entry } = shown;
    const seq = entry.seq;
    if (!Number.isSafeInteger(seq) || seq < 0) throw new Failure('why.malformed', {}, item.expect ?? '?');
    item.seq = seq;
    if (item.expect !== null && item.expect !== seq) throw new Failure('why.missing', {}, item.expect);
    const names = Object.keys(entry).sort();
    if (names.length !== MEMBERS.length || names.some((n, i) => n !== MEMBERS[i])) {
      throw new Failure('why.malformed', {}, seq);
    }
    let bytes;
    try {
      bytes = utf8.encode(canonical(entry));
    } catch {
      throw new Failure('why.malformed', {}, seq);
    }
    const leaf = await leafHash(bytes);
    if (stated !== toB64(leaf)) throw new Failure('why.leaf', {}, seq);
    return leaf;
  }

  async function run(all) {
    btnPage.disabled = true;
    btnAll.disabled = true;
    progress.parentElement.hidden = false;
    setProgress(0, 1);
    show('', [say('running')]);
    for (const tr of document.querySelectorAll('#entries tr.failed')) tr.classList.remove('failed');
    const failures = [];
    try {
      if (!subtle) throw new Trouble('why.no_crypto');
      const keys = await auditKeys();
      let latest = await latestCheckpoint();
      await verifyCheckpoint(latest, keys);
      const items = all ? await everyEntry() : await entriesOnPage(failures);

      // hash every entry first: the seq of each is known from then on
      const leaves = new Array(items.length).fill(null);
      let prev = null;
      for (let i = 0; i < items.length; i++) {
        try {
          leaves[i] = await leafOf(items[i], prev);
          prev = items[i].seq;
        } catch (err) {
          if (!(err instanceof Failure)) throw err;
          failures.push(err);
        }
      }
      for (let i = 1; i < items.length; i++) {
        if (leaves[i] && leaves[i - 1] && items[i].seq <= items[i - 1].seq) {
          failures.push(new Failure('why.order', {}, items[i].seq));
        }
      }

      // entries newer than the checkpoint: the hub signs a new one within
      // a second while entries arrive; an entry no checkpoint covers cannot
      // be called intact
      for (let tries = 0; tries < 3 &&
        items.some((it, i) => leaves[i] && it.seq >= latest.tree_size); tries++) {
        await new Promise((resolve) => setTimeout(resolve, 1500));
        const newer = await latestCheckpoint();
        if (newer.tree_size > latest.tree_size) {
          await verifyCheckpoint(newer, keys);
          latest = newer;
        }
      }
      const rootHash = hashOf(latest.root_hash);

      // the whole log (a platform reader sees every entry): seq 0, 1, 2 ...
      // with none missing, at least up to the checkpoint
      if (all && root.getAttribute('data-whole-log') === 'true') {
        let at = 0;
        while (at < items.length && items[at].seq === at) at++;
        if (at < items.length || items.length < latest.tree_size) {
          // the hub's proofs over a log with a hole are not worth asking for
          throw new Failure('why.gap', {}, at);
        }
      }

      const base = await baseline(keys);
      if (base) await checkConsistency(base.cp, latest);

      let done = 0;
      let covered = 0;
      let uncovered = 0;
      setProgress(0, items.length);
      await pool(items.map((it, i) => i), CONCURRENCY, async (i) => {
        const seq = items[i].seq;
        if (leaves[i] && seq < latest.tree_size) {
          const proof = await getJson(`/audit/v1/proofs/inclusion?seq=${seq}&tree_size=${latest.tree_size}`);
          const path = Array.isArray(proof.hashes) ? proof.hashes.map(hashOf) : [null];
          const ok = proof.leaf_index === seq && proof.tree_size === latest.tree_size &&
            !path.includes(null) && await inclusionOk(seq, latest.tree_size, leaves[i], path, rootHash);
          if (ok) covered++;
          else failures.push(new Failure('why.inclusion', {}, seq));
        } else if (leaves[i]) {
          uncovered++;
        }
        setProgress(++done, items.length);
      });

      if (failures.length) throw failures.sort(bySeq)[0];
      if (uncovered) throw new Trouble('why.not_yet', { count: uncovered });
      const signer = keys.find((k) => k.kid === latest.kid);
      try {
        localStorage.setItem(STORE, JSON.stringify({
          cp: latest, key: { kid: signer.kid, x: signer.x, y: signer.y },
        }));
      } catch {
        // storage full or refused: the next check starts from the oldest
      }
      const lines = [say('intact'), say('intact_detail', {
        size: latest.tree_size, time: latest.time, kid: latest.kid, count: covered,
      })];
      if (base) {
        lines.push(say(base.kept ? 'consistency_ok' : 'consistency_oldest',
          { first: base.cp.tree_size, size: latest.tree_size }));
      }
      lines.push(say('trust', { thumbprint: await thumbprint(signer) }));
      lines.push(say('baseline_stored'));
      show('intact', lines);
    } catch (err) {
      if (err instanceof Failure) {
        if (!failures.includes(err)) failures.push(err);
        const first = failures.sort(bySeq)[0];
        const why = say(first.key, first.vars);
        const lines = [say('not_intact')];
        if (first.seq !== null) {
          lines.push(say('first_failure', { seq: first.seq, why }));
          const row = document.querySelector(`#entries tr[data-seq="${CSS.escape(String(first.seq))}"]`);
          if (row) row.classList.add('failed');
        } else {
          lines.push(why);
        }
        const entryFailures = failures.filter((f) => f.seq !== null).length;
        if (entryFailures > 1) lines.push(say('more_failures', { count: entryFailures }));
        show('not-intact', lines);
      } else if (err instanceof Trouble) {
        show('', [say('cannot', { why: say(err.key, err.vars) })]);
      } else {
        show('', [say('cannot', { why: String(err && err.message ? err.message : err) })]);
      }
    } finally {
      progress.parentElement.hidden = true;
      btnPage.disabled = false;
      btnAll.disabled = false;
    }
  }

  // Failures without an entry first (they concern the whole log), then by seq.
  function bySeq(a, b) {
    const ka = typeof a.seq === 'number' ? a.seq : a.seq === null ? -1 : Number.MAX_SAFE_INTEGER;
    const kb = typeof b.seq === 'number' ? b.seq : b.seq === null ? -1 : Number.MAX_SAFE_INTEGER;
    return ka - kb;
  }

  if (!subtle) {
    show('', [say('cannot', { why: say('why.no_crypto') })]);
    return;
  }
  btnPage.addEventListener('click', () => run(false));
  btnAll.addEventListener('click', () => run(true));
  btnPage.disabled = false;
  btnAll.disabled = false;
})();
