// The tenant isolation matrix of tests/integration/test_isolation_matrix.sh:
// every operation of the hub's /openapi.json, with each attacker credential
// (tokens of kanonji, none), each mix of Fiware-Service / ServicePath /
// Renkei-Purpose headers naming takamatsu, path parameters filled with
// takamatsu's ids (and kanonji's own tenant where a second tenant is named),
// with and without a query aimed at takamatsu, and a body aimed at
// takamatsu's objects. Takamatsu's objects carry MARKER in fields no request
// names; the oracle is that no answer carries it and none is a 5xx. The
// calling script then checks that takamatsu's rows did not change.
//
// First, the control: the same reads with takamatsu's own tokens must show
// MARKER, or the oracle could not fail.
//
// environment: HUB, MARKER, IDS (JSON: entity, subscription, client, login,
//   agreement), ATTACKERS (JSON name → token; "" for no token), VICTIM
//   (JSON: ngsi, admin: takamatsu's tokens), VICTIM_TOKEN_FOR_INTROSPECTION
//   (a token of takamatsu an attacker presents to introspect and revoke),
//   ATTACKER_CLIENT (JSON [id, secret] of a kanonji client), NOTIFY_URL (where
//   the subscriptions the matrix makes send their notifications)
// prints one JSON line: {requests, statuses, violations: [...], control}
const env = (k) => {
  if (process.env[k] === undefined) {
    console.error(`isolation_matrix.mjs: ${k} is not set`);
    process.exit(2);
  }
  return process.env[k];
};
const hub = env("HUB"), marker = env("MARKER");
const ids = JSON.parse(env("IDS"));
const attackers = JSON.parse(env("ATTACKERS"));
const victim = JSON.parse(env("VICTIM"));
const victimToken = env("VICTIM_TOKEN_FOR_INTROSPECTION");
const [acId, acSecret] = JSON.parse(env("ATTACKER_CLIENT"));
const notifyUrl = env("NOTIFY_URL");

const violations = [];
const statuses = {};
let requests = 0;

async function send(method, path, headers, body, label) {
  const h = { ...headers };
  let payload;
  if (body !== undefined) {
    if (typeof body === "string") {
      payload = body;
      h["Content-Type"] ??= "application/x-www-form-urlencoded";
    } else {
      payload = JSON.stringify(body);
      h["Content-Type"] ??= "application/json";
    }
  }
  let status = 0, text = "";
  try {
    const r = await fetch(hub + path, { method, headers: h, body: payload, redirect: "manual" });
    status = r.status;
    text = await r.text();
    text += "\n" + [...r.headers].map(([k, v]) => `${k}: ${v}`).join("\n");
  } catch (e) {
    text = "(no answer: " + (e.cause?.message || e.message) + ")";
  }
  requests++;
  statuses[status] = (statuses[status] || 0) + 1;
  if (status === 0 || (status >= 500 && status !== 501)) // 501: registrations are not supported
    violations.push({ label, method, path, status, why: "no answer or a server error", text: text.slice(0, 300) });
  else if (text.includes(marker))
    violations.push({ label, method, path, status, why: "takamatsu's data in the answer", text: text.slice(0, 300) });
  return { status, text };
}

// ---------------------------------------------------------------- control
const control = {};
{
  const probes = [
    ["entity", "ngsi", `/v2/entities/${ids.entity}`],
    ["subscription", "ngsi", `/v2/subscriptions/${ids.subscription}`],
    ["client", "admin", `/admin/v1/clients/${ids.client}`],
    ["resident", "admin", `/admin/v1/residents/${ids.login}`],
    ["agreement", "admin", `/admin/v1/agreements/${ids.agreement}`],
    ["audit", "admin", "/audit/v1/entries?limit=100"],
    ["hidden entity", "ngsi", "/v2/entities?limit=1000"],
    ["hidden type", "ngsi", "/v2/types"],
  ];
  for (const [name, tok, path] of probes) {
    const r = await fetch(hub + path, { headers: { Authorization: "Bearer " + victim[tok] } });
    const text = await r.text();
    control[name] = r.status === 200 && text.includes(marker);
  }
}

// -------------------------------------------------------------- the matrix
const api = await (await fetch(hub + "/openapi.json")).json();

function fill(pattern, second) {
  return pattern.replace(/\{([a-z]+)\}/g, (_, p) => {
    if (p === "tenant") return second;
    if (p === "name") return "secret";
    if (p === "type") return "WaterLevel";
    if (p === "file") return "console.js";
    if (p === "login") return ids.login;
    if (pattern.startsWith("/v2/entities")) return ids.entity;
    if (pattern.startsWith("/v2/subscriptions")) return ids.subscription;
    if (pattern.includes("/clients") || pattern.startsWith("/oauth2/register")) return ids.client;
    if (pattern.includes("/agreements")) return ids.agreement;
    if (pattern.includes("/tenants") || pattern.includes("/towns")) return "takamatsu";
    return "x";
  });
}

// a query aimed at takamatsu, by path
function aimed(pattern) {
  if (pattern === "/v2/entities") return `?id=${ids.entity}&type=WaterLevel&attrs=secret`;
  if (pattern.startsWith("/v2/entities/")) return "?type=WaterLevel&attrs=secret";
  if (pattern.startsWith("/admin/v1/") || pattern.startsWith("/admin/")) return "?tenant=takamatsu";
  if (pattern === "/audit/v1/entries") return "?tenant=takamatsu&provider=takamatsu&limit=100";
  if (pattern.startsWith("/audit/v1/proofs/inclusion")) return "?seq=0&tree_size=1";
  if (pattern.startsWith("/audit/v1/proofs/consistency")) return "?first=1&second=2";
  if (pattern === "/v2/types" || pattern.startsWith("/v2/types/")) return "?options=values";
  return "?tenant=takamatsu";
}

// a body aimed at takamatsu's objects, by method and path
function bodyFor(method, pattern) {
  const ent = { id: ids.entity, type: "WaterLevel", secret: { type: "Text", value: "pwned" } };
  if (pattern === "/v2/entities") return ent;
  if (pattern === "/v2/op/update") return { actionType: "append", entities: [ent] };
  if (pattern === "/v2/op/query") return { entities: [{ idPattern: ".*" }], attrs: ["secret"] };
  if (pattern.endsWith("/attrs/{name}/value")) return "\"pwned\"";
  if (pattern.endsWith("/attrs/{name}")) return { type: "Text", value: "pwned" };
  if (pattern.endsWith("/attrs")) return { secret: { type: "Text", value: "pwned" } };
  if (pattern === "/v2/subscriptions")
    return { subject: { entities: [{ idPattern: ".*" }] }, notification: { http: { url: notifyUrl } } };
  if (pattern.startsWith("/v2/subscriptions/")) return { status: "inactive" };
  if (pattern === "/v2/registrations")
    return { dataProvided: { entities: [{ id: ids.entity, type: "WaterLevel" }] }, provider: { http: { url: "http://127.0.0.1:9/v2" } } };
  if (pattern === "/admin/v1/clients")
    return { tenant: "takamatsu", name: "pwned", grant_types: ["client_credentials"], scopes: ["ngsi.read"] };
  if (pattern.startsWith("/admin/v1/clients/")) return { state: "disabled" };
  if (pattern === "/admin/v1/residents")
    return { tenant: "takamatsu", login: "pwned", name: "pwned", email: "pwned@example.jp", password: "correct horse battery staple" };
  if (pattern.startsWith("/admin/v1/residents/")) return { state: "disabled", name: "pwned" };
  if (pattern === "/admin/v1/tenants") return { id: "pwned", name: "pwned", parent: "takamatsu", hosted: true };
  if (pattern.startsWith("/admin/v1/tenants/")) return { name: "pwned", state: "suspended" };
  if (pattern === "/admin/v1/agreements")
    return { provider: "takamatsu", consumer: "kanonji", entity_types: ["WaterLevel"], purposes: ["tourism"] };
  if (pattern.startsWith("/admin/v1/agreements/")) return { state: "active" };
  if (pattern === "/oauth2/introspect" || pattern === "/oauth2/revoke")
    return `token=${encodeURIComponent(victimToken)}&client_id=${acId}&client_secret=${encodeURIComponent(acSecret)}`;
  if (pattern === "/oauth2/token") return "grant_type=client_credentials&scope=ngsi.read";
  if (pattern.startsWith("/oauth2/register")) return { redirect_uris: ["https://pwned.example/cb"], client_name: "pwned" };
  if (pattern.startsWith("/admin/") || pattern === "/login" || pattern === "/consent" ||
    pattern === "/logout" || pattern === "/account/revoke" || pattern === "/oauth2/authorize")
    return "state=disabled&tenant=takamatsu&client_id=" + ids.client + "&csrf=x";
  return {};
}

const headerMixes = [
  {},
  { "Fiware-Service": "takamatsu" },
  { "Fiware-Service": "TAKAMATSU", "Renkei-Purpose": "tourism" },
  { "Fiware-Service": "takamatsu", "Fiware-ServicePath": "/", "Renkei-Purpose": "disaster-response" },
];

const ops = [];
for (const [pattern, methods] of Object.entries(api.paths))
  for (const m of Object.keys(methods)) ops.push([m.toUpperCase(), pattern]);
ops.sort();

const jobs = [];
for (const [method, pattern] of ops) {
  for (const second of ["takamatsu", "kanonji"]) {
    if (second === "kanonji" && !pattern.includes("{tenant}")) continue;
    const path = fill(pattern, second);
    for (const query of ["", aimed(pattern)]) {
      for (const [name, token] of Object.entries(attackers)) {
        for (const mix of headerMixes) {
          const headers = { ...mix };
          if (token) headers.Authorization = "Bearer " + token;
          const body = method === "GET" || method === "HEAD" || method === "DELETE" ? undefined : bodyFor(method, pattern);
          jobs.push([method, path + query, headers, body, `${name} ${JSON.stringify(mix)}`]);
        }
      }
    }
  }
}
// a few at a time: enough to be quick, few enough not to be throttled
let next = 0;
await Promise.all(Array.from({ length: 4 }, async () => {
  while (next < jobs.length) {
    const j = jobs[next++];
    await send(...j);
  }
}));

console.log(JSON.stringify({ operations: ops.length, requests, statuses, control, violations: violations.slice(0, 20),
  violation_count: violations.length }));
