// The auditor console (/audit) as an auditor uses it: the prefecture's
// auditor filters to one town and sees exactly the entries the auditor API
// gives for that filter, pages through them with the cursor, exports them
// as CSV (the file holds exactly those entries) and JSON lines, reads the
// charts (their tables hold the same counts as the entries), and runs the
// in-page verification: "intact"; then an entry on the page is altered in
// the database behind the hub's back, and the page says NOT intact, naming
// that entry (the entry is restored afterwards: other test files share the
// database). Without JavaScript the table and the filters still work.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { HUB, STAFF_PASSWORD, checkPage, launch, newPage, psql, shot, signIn } from './lib.mjs';

const AUDITOR = 'auditor@kagawa.example';
const TOWN = 'takamatsu'; // as provider

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

// Every entry GET /audit/v1/entries gives for query, with the page's staff
// session (in the page, as its script would ask), following the cursor.
async function apiEntries(page, query) {
  return page.evaluate(async (q) => {
    const items = [];
    let cursor = null;
    for (let pages = 0; pages < 1000; pages++) {
      const r = await fetch(`/audit/v1/entries?${q}&limit=200${cursor === null ? '' : `&cursor=${cursor}`}`);
      if (!r.ok) throw new Error(`/audit/v1/entries?${q}: HTTP ${r.status} ${await r.text()}`);
      const body = await r.json();
      items.push(...body.items);
      if (body.next === null) return items;
      cursor = body.next;
    }
    throw new Error('the cursor never ends');
  }, query);
}

// The seq of every row of the entries table.
const shownSeqs = (page) =>
  page.$$eval('#entries tbody tr[data-seq]', (trs) => trs.map((tr) => Number(tr.dataset.seq)));

// RFC 4180 (quoted fields, doubled quotes, CRLF) into rows of cells.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++; } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(cell); cell = ''; } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell); rows.push(row); row = []; cell = ''; i++;
    } else cell += c;
  }
  if (cell !== '' || row.length) { row.push(cell); rows.push(row); }
  return rows;
}

const withoutLeaf = ({ leaf_hash: _, ...entry }) => entry;

// Clicks the verify button and waits for the verdict in the status region.
async function verify(page, which = '#verify-page') {
  await page.locator(which).click();
  await page.locator('#verify-status.intact, #verify-status.not-intact').waitFor({ timeout: 60000 });
  const status = page.getByRole('status');
  return { text: await status.innerText(), intact: await page.locator('#verify-status.intact').count() === 1 };
}

test('an auditor filters to one town, pages with the cursor and exports exactly those entries', async () => {
  const page = await newPage(browser);
  await signIn(page, AUDITOR, STAFF_PASSWORD, '/audit');

  // the filters are a plain GET form
  await page.getByLabel('自治体の立場').selectOption('provider');
  await page.getByLabel('自治体ID').fill(TOWN);
  await page.getByLabel(/1ページの件数/).fill('5');
  const [first] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/audit'),
    page.getByRole('button', { name: 'この条件で表示' }).click(),
  ]);
  await page.waitForLoadState();
  assert.equal(first.status(), 200);
  await checkPage(page, first);
  const here = new URL(page.url());
  assert.equal(here.searchParams.get('town_role'), 'provider');
  assert.equal(here.searchParams.get('town'), TOWN);

  const expected = await apiEntries(page, `provider=${TOWN}`);
  assert.ok(expected.length > 5, `the demo has more than a page of ${TOWN}'s entries (${expected.length})`);
  assert.ok(expected.every((e) => e.provider === TOWN), 'the API filtered to the provider');
  const want = expected.map((e) => e.seq);

  // page 1, then the "next page" link (which keeps the filters) to the end
  const seen = [...await shownSeqs(page)];
  assert.deepEqual(seen, want.slice(0, 5), 'page 1 holds the first five entries');
  const firstRow = page.locator(`#entries tr[data-seq="${want[0]}"]`);
  assert.match(await firstRow.innerText(), new RegExp(TOWN));
  assert.match(await page.locator('#entries caption').innerText(), /5 件/);
  await shot(page, 'audit-table');
  for (let pages = 1; pages < 50; pages++) {
    const next = page.getByRole('link', { name: '次のページへ' });
    if (await next.count() === 0) break;
    const href = new URL(await next.getAttribute('href'), HUB);
    assert.equal(href.searchParams.get('town'), TOWN, 'the next page keeps the filters');
    assert.equal(href.searchParams.get('town_role'), 'provider');
    assert.equal(href.searchParams.get('cursor'), String(seen[seen.length - 1]), 'the cursor is the last seq shown');
    const [r] = await Promise.all([
      page.waitForResponse((x) => new URL(x.url()).pathname === '/audit'),
      next.click(),
    ]);
    await page.waitForLoadState();
    assert.equal(r.status(), 200);
    const rows = await shownSeqs(page);
    assert.ok(rows.length > 0 && rows.length <= 5, `a page of 1 to 5 rows (${rows.length})`);
    seen.push(...rows);
  }
  assert.deepEqual(seen, want, 'the pages hold every entry of the filter, once, in order');
  assert.equal(await page.getByRole('link', { name: '最初のページへ' }).count(), 1);

  // CSV: a download of exactly those entries
  const [csv] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'CSV で書き出す' }).click(),
  ]);
  assert.match(csv.suggestedFilename(), /^renkei-audit-\d{8}T\d{6}Z\.csv$/);
  const rows = parseCsv(await readFile(await csv.path(), 'utf8'));
  const header = rows.shift();
  assert.equal(header[0], 'seq');
  assert.equal(header[header.length - 1], 'entry');
  assert.deepEqual(rows.map((r) => Number(r[0])), want, 'the CSV holds exactly the filtered entries');
  rows.forEach((r, i) => assert.deepEqual(JSON.parse(r[r.length - 1]), withoutLeaf(expected[i]),
    `CSV row ${i}: the entry's canonical bytes`));

  // JSON lines: the same entries, each with its leaf hash
  const [jsonl] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'JSON Lines で書き出す' }).click(),
  ]);
  assert.match(jsonl.suggestedFilename(), /\.jsonl$/);
  const lines = (await readFile(await jsonl.path(), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.deepEqual(lines, expected, 'the JSON lines are the API\'s entries');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the charts count transfers per pair of towns and denials per reason', async () => {
  const page = await newPage(browser);
  await signIn(page, AUDITOR, STAFF_PASSWORD, '/audit');
  const r = await page.goto(`${HUB}/audit`);
  await checkPage(page, r);
  const charts = page.locator('svg[role="img"]');
  assert.equal(await charts.count(), 2, 'two charts');
  for (const label of await charts.evaluateAll((svgs) => svgs.map((s) => s.getAttribute('aria-label')))) {
    assert.match(label, /\d{4}-\d{2}-\d{2}〜\d{4}-\d{2}-\d{2}/, `the chart's name says its range: ${label}`);
  }
  assert.equal(await page.locator('svg [style], svg style').count(), 0, 'no style in the charts');

  // the same counts from the entries themselves (the default: the last 30 days)
  const since = new Date(Date.now() - 30 * 86400e3).toISOString().slice(0, 10);
  const transfers = await apiEntries(page, `kind=transfer&from=${since}`);
  assert.ok(transfers.some((e) => e.decision === 'permit') && transfers.some((e) => e.decision === 'deny'),
    'demo-traffic made permitted and denied transfers');
  const pairs = new Map();
  const reasons = new Map();
  for (const e of transfers) {
    const key = `${e.time.slice(0, 10)} ${e.consumer?.tenant ?? '—'} → ${e.provider ?? '—'}`;
    const c = pairs.get(key) ?? { permit: 0, deny: 0 };
    c[e.decision]++;
    pairs.set(key, c);
    if (e.decision === 'deny') reasons.set(e.reason ?? '', (reasons.get(e.reason ?? '') ?? 0) + 1);
  }
  const table = async (caption) => page.locator('table.figures', { has: page.locator('caption', { hasText: caption }) })
    .locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent.trim())));
  const pairRows = await table('自治体の組ごと・日ごとの転送件数');
  assert.deepEqual(Object.fromEntries(pairRows.map(([day, pair, p, d]) => [`${day} ${pair}`, { permit: Number(p), deny: Number(d) }])),
    Object.fromEntries(pairs), 'the pairs table counts the transfers');
  const reasonRows = await table('拒否の理由ごとの件数');
  assert.deepEqual(Object.fromEntries(reasonRows.map(([, code, n]) => [code, Number(n)])),
    Object.fromEntries(reasons), 'the reasons table counts the denials');
  await page.locator('#charts-h').scrollIntoViewIfNeeded();
  await shot(page, 'audit-chart');
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('bad filters get a 400 page naming the field', async () => {
  const page = await newPage(browser);
  await signIn(page, AUDITOR, STAFF_PASSWORD, '/audit');
  for (const [query, field] of [['limit=0', 'limit'], ['limit=501', 'limit'], ['town=Takamatsu!', 'town'],
    ['from=yesterday', 'from'], ['decision=maybe', 'decision'], ['town_role=owner&town=kanonji', 'town_role'],
    [`purpose=${'x'.repeat(201)}`, 'purpose']]) {
    const r = await page.goto(`${HUB}/audit?${query}`);
    assert.equal(r.status(), 400, query);
    await checkPage(page, r);
    assert.match(await page.getByRole('alert').innerText(), new RegExp(`\\(${field}\\)|（${field}）`), `${query} names ${field}`);
  }
  await page.context().close();
});

test('without JavaScript the entries and the filters still show', async () => {
  const page = await newPage(browser, { javaScript: false });
  await signIn(page, AUDITOR, STAFF_PASSWORD, '/audit');
  const r = await page.goto(`${HUB}/audit?town_role=consumer&town=kanonji&limit=500`);
  assert.equal(r.status(), 200);
  await checkPage(page, r);
  // as the superuser sees the table: the prefecture's auditor sees all of kanonji's
  const want = (await psql("SELECT string_agg(seq::text, ',' ORDER BY seq) FROM renkei.audit_entries WHERE consumer_tenant = 'kanonji'"))
    .split(',').map(Number);
  assert.ok(want.length > 0);
  assert.deepEqual(await shownSeqs(page), want, 'the table shows kanonji\'s entries as consumer');
  assert.equal(await page.getByLabel('自治体ID').inputValue(), 'kanonji', 'the form keeps the filter');
  assert.ok(await page.locator('#verify-page').isDisabled(), 'the verify button needs JavaScript');
  assert.equal(await page.locator('noscript').count(), 1, 'and the page says so');
  assert.equal(await page.locator('table.figures').count() >= 1, true, 'the charts\' figures are tables too');
  await page.context().close();
});

test('the in-page verification says intact, and NOT intact naming an entry altered in the database', async () => {
  const page = await newPage(browser);
  await signIn(page, AUDITOR, STAFF_PASSWORD, '/audit');
  const query = `/audit?town_role=provider&town=${TOWN}&limit=500`;
  let r = await page.goto(`${HUB}${query}`);
  await checkPage(page, r);
  const shown = await shownSeqs(page);
  let v = await verify(page);
  assert.ok(v.intact, `intact: ${v.text}`);
  assert.match(v.text, /記録は改ざんされていません/);
  assert.match(v.text, new RegExp(`${shown.length} 件の記録`), 'it says how many entries it checked');
  await shot(page, 'audit-verified');
  v = await verify(page, '#verify-all');
  assert.ok(v.intact, `every entry the auditor can see: ${v.text}`);
  const kept = JSON.parse(await page.evaluate(() => localStorage.getItem('renkei.audit.checkpoint.v2')));
  assert.ok(kept?.cp?.tree_size > 0 && kept.key?.kid === kept.cp.kid && kept.key.x && kept.key.y,
    'the checkpoint is kept with the key that signed it');
  assert.match(v.text, /鍵の指紋（RFC 7638）: [A-Za-z0-9_-]{43}/, 'the key thumbprint, to compare elsewhere');

  // a denial on the page turned into a permit behind the hub's back
  const [victim] = (await psql(`SELECT seq FROM renkei.audit_entries WHERE provider = '${TOWN}' AND decision = 'deny' ORDER BY seq LIMIT 1`)).split('\n');
  assert.ok(shown.includes(Number(victim)), `entry ${victim} is on the page`);
  const md5 = `SELECT md5(canonical) FROM renkei.audit_entries WHERE seq = ${victim}`;
  const before = await psql(md5);
  const swap = (a, b) => psql(`SET session_replication_role = replica;
    UPDATE renkei.audit_entries SET canonical = replace(canonical, '"decision":"${a}"', '"decision":"${b}"') WHERE seq = ${victim}`);
  await swap('deny', 'permit');
  try {
    assert.notEqual(await psql(md5), before, 'the entry was altered');
    const en = await newPage(browser, { lang: 'en' });
    await signIn(en, AUDITOR, STAFF_PASSWORD, '/audit');
    r = await en.goto(`${HUB}${query}`);
    await checkPage(en, r);
    v = await verify(en);
    assert.ok(!v.intact, `NOT intact: ${v.text}`);
    assert.match(v.text, /the log is NOT intact/);
    assert.match(v.text, new RegExp(`First failing entry: seq ${victim}\\.`));
    assert.equal(await en.locator(`#entries tr.failed[data-seq="${victim}"]`).count(), 1, 'the row is marked');
    await shot(en, 'audit-tampered');
    assert.deepEqual(en.problems, []);
    await en.context().close();

    await page.reload();
    v = await verify(page);
    assert.ok(!v.intact, `NOT intact from the kept checkpoint too: ${v.text}`);
    assert.match(v.text, new RegExp(`seq ${victim}。`));
  } finally {
    await swap('permit', 'deny');
  }
  assert.equal(await psql(md5), before, 'the entry is restored');
  await page.reload();
  v = await verify(page);
  assert.ok(v.intact, `intact again once restored: ${v.text}`);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('the platform checks the whole log: a deleted entry is a gap, NOT intact', async () => {
  const page = await newPage(browser, { lang: 'en' });
  await signIn(page, 'operator@kagawa.example', STAFF_PASSWORD, '/audit');
  let v = await verify(page, '#verify-all');
  assert.ok(v.intact, `the whole log: ${v.text}`);
  assert.match(v.text, /from the hub's oldest checkpoint/, 'a first check starts from the oldest');
  v = await verify(page, '#verify-all');
  assert.ok(v.intact, `again: ${v.text}`);
  assert.match(v.text, /consistency proof from the checkpoint of tree size \d+/,
    'a second check starts from the checkpoint this browser kept');

  // an entry the checkpoint covers taken out behind the hub's back
  const victim = Number(await psql('SELECT max(seq) / 2 FROM renkei.audit_entries'));
  await psql(`DROP TABLE IF EXISTS public.gap_saved;
    CREATE TABLE public.gap_saved AS SELECT * FROM renkei.audit_entries WHERE seq = ${victim};
    SET session_replication_role = replica;
    DELETE FROM renkei.audit_entries WHERE seq = ${victim}`);
  try {
    await page.reload();
    v = await verify(page, '#verify-all');
    assert.ok(!v.intact, `NOT intact: ${v.text}`);
    assert.match(v.text, new RegExp(`First failing entry: seq ${victim}\\. The entries' seq numbers have a gap`));
  } finally {
    await psql(`SET session_replication_role = replica;
      INSERT INTO renkei.audit_entries SELECT * FROM public.gap_saved;
      DROP TABLE public.gap_saved`);
  }
  await page.reload();
  v = await verify(page, '#verify-all');
  assert.ok(v.intact, `intact again once restored: ${v.text}`);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});
