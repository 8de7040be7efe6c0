// The soak's load: mixed traffic against a running hub for a given time, at a
// steady rate, with one report line per interval. Run by ops/bench/soak,
// which prepares the hub, its database and the environment below.
//
// Every request is checked: a status other than the one expected (or a
// cut connection) is an error, counted and its first few printed.
//
//   token     POST /oauth2/token, client_credentials, a random one of the
//             three clients (200)
//   own       takamatsu reads its own hosted store: one entity or a page of
//             20 (200)
//   cross     kanonji reads takamatsu's under the agreement (200; an audit
//             entry each)
//   denied    kanonji asks for a type the agreement does not cover (403; an
//             audit entry each)
//   write     takamatsu updates an entity's attribute (204)
//   audit     kagawa's auditor pages the log, or asks an inclusion proof
//             for a recent entry (200)
//
// Each interval prints, as a tab-separated line after a header: elapsed
// seconds, requests/s, errors, requests that could not start (CONC already
// in flight: the hub is behind RATE; more than 1% of them fails the run),
// p50 and p99 in ms over every request, p99 of
// each kind, the hub's resident memory (VmRSS, from /proc) and PostgreSQL's
// (the sum of its processes' RssAnon, i.e. what they allocated themselves,
// shared buffers aside). At the end one JSON line sums it all up.
//
// environment: HUB (base URL), HUB_PID, PG_PIDS_CMD (a shell command that
//   prints PostgreSQL's pids), TK_ID TK_SECRET KJ_ID KJ_SECRET AU_ID
//   AU_SECRET (the clients), SECS, RATE (requests/s), CONC (requests in
//   flight at most), EVERY (seconds per report line), ENTITIES.
import { readFileSync } from "node:fs";
import { execSync } from "node:child_process";

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) {
    console.error(`soak.mjs: ${k} is not set`);
    process.exit(2);
  }
  return v;
};
const hub = env("HUB"), hubPid = env("HUB_PID"), pgPidsCmd = env("PG_PIDS_CMD");
const secs = Number(env("SECS", "60")), rate = Number(env("RATE", "500"));
const conc = Number(env("CONC", "32")), every = Number(env("EVERY", "10"));
const entities = Number(env("ENTITIES", "200"));
const clients = {
  tk: [env("TK_ID"), env("TK_SECRET")],
  kj: [env("KJ_ID"), env("KJ_SECRET")],
  au: [env("AU_ID"), env("AU_SECRET")],
};
const scopes = { tk: "ngsi.read ngsi.write", kj: "ngsi.read", au: "admin audit.read" };

// the mix, in per cent
const mix = [
  ["token", 5],
  ["own", 30],
  ["cross", 30],
  ["denied", 5],
  ["write", 20],
  ["audit", 10],
];
const kinds = mix.map(([k]) => k);

const tokens = {};
async function token(who) {
  const [id, secret] = clients[who];
  const r = await fetch(hub + "/oauth2/token", {
    method: "POST",
    headers: {
      Authorization: "Basic " + Buffer.from(`${id}:${secret}`).toString("base64"),
      "Content-Type": "application/x-www-form-urlencoded",
    },
    body: "grant_type=client_credentials&scope=" + encodeURIComponent(scopes[who]),
  });
  const body = await r.json().catch(() => ({}));
  if (r.status !== 200 || !body.access_token) throw new Error(`token ${who}: ${r.status}`);
  return body.access_token;
}

const pick = (n) => Math.floor(Math.random() * n);
const eid = () => "wl-" + String(pick(entities)).padStart(4, "0");
let lastSeq = 0;

// one request of KIND → [expected status, fetch promise]
function request(kind) {
  const bearer = (who) => ({ Authorization: "Bearer " + tokens[who] });
  const cross = { ...bearer("kj"), "Fiware-Service": "takamatsu", "Renkei-Purpose": "disaster-response" };
  switch (kind) {
    case "token": {
      const who = ["tk", "kj", "au"][pick(3)];
      const [id, secret] = clients[who];
      return [200, fetch(hub + "/oauth2/token", {
        method: "POST",
        headers: {
          Authorization: "Basic " + Buffer.from(`${id}:${secret}`).toString("base64"),
          "Content-Type": "application/x-www-form-urlencoded",
        },
        body: "grant_type=client_credentials&scope=" + encodeURIComponent(scopes[who]),
      })];
    }
    case "own":
      return [200, fetch(hub + (Math.random() < 0.5 ? `/v2/entities/${eid()}`
        : "/v2/entities?type=WaterLevel&limit=20&offset=" + pick(entities - 20)), { headers: bearer("tk") })];
    case "cross":
      return [200, fetch(hub + (Math.random() < 0.5 ? `/v2/entities/${eid()}?type=WaterLevel`
        : "/v2/entities?type=WaterLevel&limit=20"), { headers: cross })];
    case "denied":
      return [403, fetch(hub + "/v2/entities?type=Shelter", { headers: cross })];
    case "write":
      return [204, fetch(hub + `/v2/entities/${eid()}/attrs`, {
        method: "PATCH",
        headers: { ...bearer("tk"), "Content-Type": "application/json" },
        body: JSON.stringify({ level: { type: "Number", value: Math.round(Math.random() * 500) / 100 } }),
      })];
    case "audit":
      // the newest entries (a tail), a page of the last thousand seen, or
      // the inclusion proof of one of them in the tree of all seen so far
      const r = Math.random();
      if (r < 1 / 3 || lastSeq < 2)
        return [200, fetch(hub + `/audit/v1/entries?limit=20&after=${lastSeq}`, { headers: bearer("au") })];
      if (r < 2 / 3)
        return [200, fetch(hub + `/audit/v1/entries?limit=20&after=${Math.max(0, lastSeq - 20 - pick(1000))}`,
          { headers: bearer("au") })];
      return [200, fetch(hub + `/audit/v1/proofs/inclusion?seq=${lastSeq - pick(Math.min(lastSeq, 1000))}` +
        `&tree_size=${lastSeq + 1}`, { headers: bearer("au") })];
  }
  throw new Error(kind);
}

function pgRss() {
  let kb = 0;
  for (const pid of execSync(pgPidsCmd).toString().split(/\s+/).filter(Boolean)) {
    try {
      const m = /RssAnon:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) kb += Number(m[1]);
    } catch { /* a backend gone */ }
  }
  return kb;
}
const hubRss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${hubPid}/status`, "utf8"))[1]);

// nearest rank: the smallest value with at least p of them at or below it
const q = (sorted, p) => (sorted.length ? sorted[Math.max(0, Math.ceil(sorted.length * p) - 1)] : NaN);
const ms = (x) => (Number.isNaN(x) ? "-" : x.toFixed(2));

let win = { n: 0, errors: 0, lat: [], per: Object.fromEntries(kinds.map((k) => [k, []])) };
const total = { n: 0, errors: 0, per: Object.fromEntries(kinds.map((k) => [k, 0])) };
const errorsShown = [];
const lines = [];
let started = performance.now(), winStart = started;
let inFlight = 0, skipped = 0, winSkipped = 0;

async function one() {
  let r = Math.random() * 100, kind = kinds[0];
  for (const [k, w] of mix) {
    if (r < w) { kind = k; break; }
    r -= w;
  }
  const t0 = performance.now();
  let status = 0, text = "";
  const [want, p] = request(kind);
  try {
    const res = await p;
    status = res.status;
    text = await res.text();
  } catch (e) {
    text = e.cause?.message || e.message;
  }
  const dt = performance.now() - t0;
  win.n++;
  total.n++;
  total.per[kind]++;
  win.lat.push(dt);
  win.per[kind].push(dt);
  if (status !== want) {
    win.errors++;
    total.errors++;
    if (errorsShown.length < 10) errorsShown.push(`${kind}: ${status} (want ${want}) ${text.slice(0, 200)}`);
  } else if (kind === "audit" && text.startsWith("{")) {
    try {
      const j = JSON.parse(text);
      if (Array.isArray(j.items) && j.items.length) lastSeq = Math.max(lastSeq, ...j.items.map((e) => e.seq));
    } catch { /* counted as fine: the status was right */ }
  }
}

function report() {
  const now = performance.now();
  const t = (now - started) / 1000;
  const lat = win.lat.sort((a, b) => a - b);
  const per = kinds.map((k) => ms(q(win.per[k].sort((a, b) => a - b), 0.99)));
  const line = [t.toFixed(0), (win.n / ((now - winStart) / 1000)).toFixed(0), win.errors, winSkipped,
    ms(q(lat, 0.5)), ms(q(lat, 0.99)), ...per, (hubRss() / 1024).toFixed(1), (pgRss() / 1024).toFixed(1)];
  winStart = now;
  winSkipped = 0;
  lines.push(line);
  console.log(line.join("\t"));
  win = { n: 0, errors: 0, lat: [], per: Object.fromEntries(kinds.map((k) => [k, []])) };
}

for (const who of Object.keys(clients)) tokens[who] = await token(who);
// refresh the three tokens well before they expire (ops/bench/soak gives them a day)
const refresher = setInterval(async () => {
  for (const who of Object.keys(clients)) tokens[who] = await token(who).catch(() => tokens[who]);
}, 600_000);
{
  const r = await fetch(hub + "/audit/v1/entries?limit=1", { headers: { Authorization: "Bearer " + tokens.au } });
  if (r.status !== 200) {
    console.error("soak.mjs: the auditor cannot read the log: " + r.status + " " + (await r.text()));
    process.exit(1);
  }
}

console.log(["secs", "req/s", "errors", "skipped", "p50_ms", "p99_ms", ...kinds.map((k) => k + "_p99"), "hub_rss_mb", "pg_anon_mb"].join("\t"));
// the clock starts now, setup done
started = winStart = performance.now();
const reporter = setInterval(report, every * 1000);
// a steady rate: each tick starts what is due, never more than CONC at once
// (what could not start is counted as skipped: the hub was too slow for RATE)
// (timers run late on a busy machine: what is due follows the clock)
const tickMs = 10;
let launched = 0;
await new Promise((resolve) => {
  const ticker = setInterval(() => {
    const elapsed = performance.now() - started;
    if (elapsed >= secs * 1000) {
      clearInterval(ticker);
      resolve();
      return;
    }
    const due = Math.floor((rate * elapsed) / 1000);
    while (launched < due) {
      launched++;
      if (inFlight >= conc) {
        skipped++;
        winSkipped++;
        continue;
      }
      inFlight++;
      one().finally(() => inFlight--);
    }
  }, tickMs);
});
while (inFlight > 0) await new Promise((r) => setTimeout(r, 20));
clearInterval(reporter);
clearInterval(refresher);
if (win.n) report();

// after the first fifth (warm-up: caches, pools and the allocator filling),
// the hub's memory should stay flat
const rss = lines.map((l) => Number(l[l.length - 2]));
// a hub too slow for RATE shows as requests that could not start: their
// latency would be missing from the p99, so more than 1% of them fails the run
const launchedAll = launched;
const tooSlow = skipped > launchedAll / 100;
const warm = rss.slice(Math.max(1, Math.floor(rss.length / 5)));
const summary = {
  seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
  requests: total.n,
  per_kind: total.per,
  errors: total.errors,
  skipped,
  target_rps: rate,
  mean_rps: Number((total.n / secs).toFixed(1)),
  worst_interval_p99_ms: Math.max(...lines.map((l) => Number(l[5]) || 0)),
  hub_rss_mb: { first: rss[0], after_warmup: warm[0], last: rss[rss.length - 1], max: Math.max(...rss) },
  first_errors: errorsShown,
};
console.log(JSON.stringify(summary));
if (tooSlow) console.error(`soak.mjs: ${skipped} of ${launchedAll} requests could not start (more than ${conc} in flight): the hub did not keep up with ${rate}/s`);
process.exit(total.errors || tooSlow ? 1 : 0);
