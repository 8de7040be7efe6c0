// The hosted NGSI-v2 context store as FIWARE's own JavaScript client,
// ngsijs (its Node.js build, which makes requests with node:http), sees it:
// a town's sensors and shelters created, queried (q, count, keyValues,
// paging, order, patterns, geography), changed one by one and in batches,
// watched by subscriptions whose notifications a small HTTP server here
// receives, deleted; the typed errors ngsijs raises; and another town that
// reaches none of it.  Run by run.sh against a running hub; the tests run
// in order and share what earlier ones made.
//
// Environment (run.sh sets it):
//   HUB_URL                                         the hub (also the issuer)
//   NGSI_CLIENT_ID, NGSI_CLIENT_SECRET              client of takamatsu (hosted),
//                                                   scopes "ngsi.read ngsi.write"
//   NGSI_OTHER_CLIENT_ID, NGSI_OTHER_CLIENT_SECRET  client of marugame (hosted),
//                                                   the same scopes
//
// ngsijs maps statuses per call: createEntity 422 → AlreadyExistsError,
// 404 → NotFoundError, 400 → BadRequestError where the call documents it
// (create, update calls, batch operations), and any other unexpected status
// (a 400 from listEntities, a 403) → InvalidResponseError('Unexpected error
// code: N').
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';

import * as client from 'openid-client';
import NGSI from 'ngsijs';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} must be set (tests/interop/run.sh sets it)`);
  return v;
}

const HUB_URL = env('HUB_URL');
const NGSI_CLIENT_ID = env('NGSI_CLIENT_ID');
const NGSI_CLIENT_SECRET = env('NGSI_CLIENT_SECRET');
const NGSI_OTHER_CLIENT_ID = env('NGSI_OTHER_CLIENT_ID');
const NGSI_OTHER_CLIENT_SECRET = env('NGSI_OTHER_CLIENT_SECRET');
const TOWN = 'takamatsu';
const OTHER_TOWN = 'marugame';
const SENSORS = '/sensors';
const SHELTERS = '/shelters';
const WLO = 'WaterLevelObserved';

// How long a notification may take to arrive before the test fails.
const NOTIFY_DEADLINE_MS = 10_000;

// ------------------------------------------------------------------ helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function token(clientId, clientSecret) {
  const config = await client.discovery(new URL(HUB_URL), clientId, clientSecret,
    client.ClientSecretBasic(clientSecret),
    { algorithm: 'oauth2', execute: [client.allowInsecureRequests] });
  const r = await client.clientCredentialsGrant(config, { scope: 'ngsi.read ngsi.write' });
  assert.equal(r.scope, 'ngsi.read ngsi.write', `${clientId}: granted scope`);
  return r.access_token;
}

function explain(err) {
  return `${err?.constructor?.name} ${err?.name}: ${err?.message}`;
}

// The rejection of `promise`, which must reject with an instance of cls.
async function rejects(promise, cls, what) {
  let value;
  try {
    value = await promise;
  } catch (err) {
    assert.ok(err instanceof cls, `${what}: expected ${cls.name}, got ${explain(err)}`);
    return err;
  }
  assert.fail(`${what}: expected ${cls.name}, but it succeeded with ${JSON.stringify(value)}`);
}

// A rejection with an HTTP status ngsijs has no class for.
async function rejectsWithStatus(promise, status, what) {
  const err = await rejects(promise, NGSI.InvalidResponseError, what);
  assert.equal(err.message, `Unexpected error code: ${status}`, `${what}: the status ngsijs saw`);
  return err;
}

const ids = (results) => results.map((e) => e.id);

function num(value) {
  return { type: 'Number', value, metadata: {} };
}
function text(value) {
  return { type: 'Text', value, metadata: {} };
}
// A GeoJSON point at latitude, longitude (GeoJSON puts longitude first).
function point(lat, lon) {
  return { type: 'geo:json', value: { type: 'Point', coordinates: [lon, lat] } };
}

// ---------------------------------------------------------------- the town

let town; // ngsijs v2 connection of takamatsu, service path /sensors
let other; // ngsijs v2 connection of marugame (no Fiware-Service: its own town)
let otherToken;

// Water level sensors on the rivers of Takamatsu (service path /sensors).
const SENSOR_ENTITIES = [
  { id: 'wl-1', waterLevel: 1.2, river: 'Kasuga' },
  { id: 'wl-2', waterLevel: 3.4, river: 'Shin' },
  { id: 'wl-3', waterLevel: 2.6, river: 'Kasuga' },
  { id: 'wl-4', waterLevel: 4.1, river: 'Koto' },
];

// Shelters around Takamatsu station (34.3503 N, 134.0467 E), service path
// /shelters; the distances are approximate (1° of latitude is 111 km, 1° of
// longitude there about 92 km).
const STATION = '34.3503,134.0467';
const SHELTER_ENTITIES = [
  { id: 'shelter-tamamo', lat: 34.3548, lon: 134.0467, km: 0.5 }, // north
  { id: 'shelter-kawaramachi', lat: 34.3503, lon: 134.0598, km: 1.2 }, // east
  { id: 'shelter-ritsurin', lat: 34.3341, lon: 134.0467, km: 1.8 }, // south
  { id: 'shelter-yashima', lat: 34.3773, lon: 134.0467, km: 3.0 }, // north
  { id: 'shelter-kozai', lat: 34.3503, lon: 134.0206, km: 2.4 }, // west
];

before(async () => {
  const mine = await token(NGSI_CLIENT_ID, NGSI_CLIENT_SECRET);
  town = new NGSI.Connection(HUB_URL, {
    headers: { Authorization: `Bearer ${mine}` },
    service: TOWN,
    servicepath: SENSORS,
  }).v2;
  otherToken = await token(NGSI_OTHER_CLIENT_ID, NGSI_OTHER_CLIENT_SECRET);
  other = new NGSI.Connection(HUB_URL, { headers: { Authorization: `Bearer ${otherToken}` } }).v2;
});

function need(value, what) {
  assert.ok(value, `${what} is missing: an earlier step failed`);
  return value;
}

// ------------------------------------------------------------- the entities

test('getServerDetails: an Orion-shaped GET /version', async () => {
  const conn = new NGSI.Connection(HUB_URL);
  const r = await conn.getServerDetails();
  assert.match(r.details?.orion?.version ?? '', /^\d+\.\d+\.\d+/, 'orion.version');
});

test('createEntity: 201 with the Location of each entity', async () => {
  need(town, 'the connection');
  for (const s of SENSOR_ENTITIES) {
    const r = await town.createEntity({
      id: s.id,
      type: WLO,
      waterLevel: { type: 'Number', value: s.waterLevel },
      river: { type: 'Text', value: s.river },
      status: { value: 'normal' }, // no type: Text by default
    }, { correlator: `ngsijs-create-${s.id}` });
    assert.equal(r.location, `/v2/entities/${s.id}?type=${WLO}`, `${s.id}: Location`);
    assert.equal(r.correlator, `ngsijs-create-${s.id}`, `${s.id}: Fiware-Correlator echoed`);
  }
});

test('createEntity of an existing entity: AlreadyExistsError', async () => {
  const err = await rejects(town.createEntity({ id: 'wl-1', type: WLO, waterLevel: { value: 9 } }),
    NGSI.AlreadyExistsError, 'creating wl-1 again');
  assert.equal(typeof err.correlator, 'string', 'the error carries the Fiware-Correlator');
  const e = await town.getEntity({ id: 'wl-1', keyValues: true });
  assert.equal(e.entity.waterLevel, 1.2, 'the existing entity is unchanged');
});

test('listEntities: q, count, orderBy and type', async () => {
  let r = await town.listEntities({ type: WLO, q: 'waterLevel>2.5', orderBy: 'waterLevel',
    count: true });
  assert.deepEqual(ids(r.results), ['wl-3', 'wl-2', 'wl-4'], 'waterLevel>2.5, lowest first');
  assert.equal(r.count, 3, 'count (Fiware-Total-Count)');

  // count is every match (Fiware-Total-Count), not the size of the page.
  r = await town.listEntities({ type: WLO, count: true, limit: 2, orderBy: '!waterLevel' });
  assert.deepEqual(ids(r.results), ['wl-4', 'wl-2'], 'highest two');
  assert.equal(r.count, 4, 'count of a page of 2');

  r = await town.listEntities({ type: WLO, q: 'river==Kasuga;waterLevel<2' });
  assert.deepEqual(ids(r.results), ['wl-1'], "river==Kasuga;waterLevel<2");
  r = await town.listEntities({ q: 'waterLevel==2..4', orderBy: 'id' });
  assert.deepEqual(ids(r.results), ['wl-2', 'wl-3'], 'a range 2..4');
  r = await town.listEntities({ q: "river=='Shin','Koto'", orderBy: '!id' });
  assert.deepEqual(ids(r.results), ['wl-4', 'wl-2'], 'a list of quoted strings');
  r = await town.listEntities({ type: 'Shelter' });
  assert.deepEqual(r.results, [], 'no entity of another type');
});

test('listEntities: normalized and keyValues renderings', async () => {
  let r = await town.listEntities({ id: 'wl-2' });
  assert.deepEqual(r.results, [{
    id: 'wl-2',
    type: WLO,
    waterLevel: num(3.4),
    river: text('Shin'),
    status: text('normal'),
  }], 'normalized, with metadata {} and Text as the default type');
  r = await town.listEntities({ id: 'wl-2', keyValues: true });
  assert.deepEqual(r.results, [{ id: 'wl-2', type: WLO, waterLevel: 3.4, river: 'Shin',
    status: 'normal' }], 'keyValues');
  r = await town.listEntities({ type: WLO, attrs: 'waterLevel', keyValues: true, limit: 1 });
  assert.deepEqual(r.results, [{ id: 'wl-1', type: WLO, waterLevel: 1.2 }], 'attrs=waterLevel');
});

test('listEntities: creation order, pages (limit, offset), idPattern, orderBy', async () => {
  let r = await town.listEntities({ type: WLO });
  assert.deepEqual(ids(r.results), ['wl-1', 'wl-2', 'wl-3', 'wl-4'], 'creation order by default');

  const pages = [];
  for (let offset = 0; offset < 6; offset += 2) {
    r = await town.listEntities({ type: WLO, limit: 2, offset, orderBy: '!waterLevel',
      count: true });
    assert.equal(r.count, 4, `count, offset ${offset}`);
    assert.equal(r.offset, offset);
    pages.push(ids(r.results));
  }
  assert.deepEqual(pages, [['wl-4', 'wl-2'], ['wl-3', 'wl-1'], []], 'pages of two');

  r = await town.listEntities({ idPattern: '^wl-[12]$' });
  assert.deepEqual(ids(r.results), ['wl-1', 'wl-2'], 'idPattern ^wl-[12]$');
  r = await town.listEntities({ typePattern: '^Water', orderBy: '!id', attrs: 'river' });
  assert.deepEqual(ids(r.results), ['wl-4', 'wl-3', 'wl-2', 'wl-1'], 'typePattern, orderBy !id');
  r = await town.listEntities({ type: WLO, orderBy: 'river,!waterLevel', keyValues: true,
    attrs: 'river,waterLevel' });
  assert.deepEqual(r.results.map((e) => `${e.river} ${e.waterLevel}`),
    ['Kasuga 2.6', 'Kasuga 1.2', 'Koto 4.1', 'Shin 3.4'], 'orderBy river,!waterLevel');
});

test('getEntity, getEntityAttributes, getEntityAttribute, getEntityAttributeValue', async () => {
  let r = await town.getEntity({ id: 'wl-3', type: WLO });
  assert.deepEqual(r.entity, { id: 'wl-3', type: WLO, waterLevel: num(2.6),
    river: text('Kasuga'), status: text('normal') });
  r = await town.getEntity({ id: 'wl-3', keyValues: true });
  assert.deepEqual(r.entity, { id: 'wl-3', type: WLO, waterLevel: 2.6, river: 'Kasuga',
    status: 'normal' });
  r = await town.getEntityAttributes({ id: 'wl-3' });
  assert.deepEqual(r.attributes, { waterLevel: num(2.6), river: text('Kasuga'),
    status: text('normal') });
  r = await town.getEntityAttributes({ id: 'wl-3', keyValues: true });
  assert.deepEqual(r.attributes, { waterLevel: 2.6, river: 'Kasuga', status: 'normal' });
  r = await town.getEntityAttribute({ id: 'wl-3', attribute: 'waterLevel' });
  assert.deepEqual(r.attribute, num(2.6));
  r = await town.getEntityAttributeValue({ id: 'wl-3', attribute: 'waterLevel' });
  assert.equal(r.value, 2.6, 'a number value');
  r = await town.getEntityAttributeValue({ id: 'wl-3', attribute: 'river', type: WLO });
  assert.equal(r.value, 'Kasuga', 'a string value');

  await rejects(town.getEntity({ id: 'wl-3', type: 'Shelter' }), NGSI.NotFoundError,
    'wl-3 of the wrong type');
  await rejects(town.getEntityAttribute({ id: 'wl-3', attribute: 'nothing' }),
    NGSI.NotFoundError, 'a missing attribute');
  await rejects(town.getEntityAttributeValue({ id: 'wl-9', attribute: 'waterLevel' }),
    NGSI.NotFoundError, 'the value of a missing entity');
});

test('updateEntityAttributes (PATCH): existing attributes only', async () => {
  await town.updateEntityAttributes({ id: 'wl-1', type: WLO,
    waterLevel: { type: 'Number', value: 2.8 } });
  let r = await town.getEntityAttributes({ id: 'wl-1', keyValues: true });
  assert.deepEqual(r.attributes, { waterLevel: 2.8, river: 'Kasuga', status: 'normal' });
  r = await town.listEntities({ type: WLO, q: 'waterLevel>2.5', orderBy: 'waterLevel' });
  assert.deepEqual(ids(r.results), ['wl-3', 'wl-1', 'wl-2', 'wl-4'], 'q sees the new value');

  await town.updateEntityAttributes({ id: 'wl-1', status: 'watch' }, { keyValues: true });
  r = await town.getEntityAttribute({ id: 'wl-1', attribute: 'status' });
  assert.deepEqual(r.attribute, text('watch'), 'keyValues PATCH');

  // Orion: 422 Unprocessable for an attribute that does not exist, which
  // ngsijs does not map to a class.
  await rejectsWithStatus(town.updateEntityAttributes({ id: 'wl-1', nothing: { value: 1 } }),
    422, 'PATCH of a missing attribute');
  await rejects(town.updateEntityAttributes({ id: 'wl-9', waterLevel: { value: 1 } }),
    NGSI.NotFoundError, 'PATCH of a missing entity');
});

test('replaceEntityAttributes (PUT): the attributes become exactly those given', async () => {
  await town.replaceEntityAttributes({ id: 'wl-3', type: WLO,
    waterLevel: { type: 'Number', value: 2.7 }, river: { type: 'Text', value: 'Kasuga' } });
  const r = await town.getEntity({ id: 'wl-3' });
  assert.deepEqual(r.entity, { id: 'wl-3', type: WLO, waterLevel: num(2.7),
    river: text('Kasuga') }, 'status is gone');
  await rejects(town.replaceEntityAttributes({ id: 'wl-9', waterLevel: { value: 1 } }),
    NGSI.NotFoundError, 'PUT attrs of a missing entity');
});

test('appendEntityAttributes: append (update or add) and strict append', async () => {
  await town.appendEntityAttributes({ id: 'wl-1', waterLevel: { type: 'Number', value: 2.9 },
    alert: { type: 'Boolean', value: false } });
  let r = await town.getEntityAttributes({ id: 'wl-1', keyValues: true });
  assert.deepEqual(r.attributes, { waterLevel: 2.9, river: 'Kasuga', status: 'watch',
    alert: false });

  await town.appendEntityAttributes({ id: 'wl-1', gauge: { type: 'Text', value: 'G-17' } },
    { strict: true });
  // Orion: 422 Unprocessable when an attribute already exists, which ngsijs
  // does not map to a class.
  await rejectsWithStatus(
    town.appendEntityAttributes({ id: 'wl-1', alert: { type: 'Boolean', value: true } },
      { strict: true }), 422, 'strict append of an existing attribute');
  r = await town.getEntityAttributes({ id: 'wl-1', keyValues: true });
  assert.deepEqual(r.attributes, { waterLevel: 2.9, river: 'Kasuga', status: 'watch',
    alert: false, gauge: 'G-17' }, 'the refused append changed nothing');
});

test('deleteEntityAttribute', async () => {
  await town.deleteEntityAttribute({ id: 'wl-1', attribute: 'gauge' });
  await rejects(town.getEntityAttribute({ id: 'wl-1', attribute: 'gauge' }), NGSI.NotFoundError,
    'the deleted attribute');
  await rejects(town.deleteEntityAttribute({ id: 'wl-1', attribute: 'gauge' }),
    NGSI.NotFoundError, 'deleting it again');
  const r = await town.getEntityAttributes({ id: 'wl-1', keyValues: true });
  assert.deepEqual(Object.keys(r.attributes).sort(), ['alert', 'river', 'status', 'waterLevel']);
});

test('batchUpdate: append, update, delete', async () => {
  await town.batchUpdate({
    actionType: 'append',
    entities: [
      { id: 'wl-5', type: WLO, waterLevel: { type: 'Number', value: 0.4 },
        river: { type: 'Text', value: 'Koto' } },
      { id: 'wl-1', type: WLO, alert: { type: 'Boolean', value: true } },
    ],
  });
  let r = await town.listEntities({ type: WLO, attrs: 'alert,waterLevel', keyValues: true });
  assert.deepEqual(r.results, [
    { id: 'wl-1', type: WLO, alert: true, waterLevel: 2.9 },
    { id: 'wl-2', type: WLO, waterLevel: 3.4 },
    { id: 'wl-3', type: WLO, waterLevel: 2.7 },
    { id: 'wl-4', type: WLO, waterLevel: 4.1 },
    { id: 'wl-5', type: WLO, waterLevel: 0.4 },
  ], 'after append');

  await town.batchUpdate({
    actionType: 'update',
    entities: [{ id: 'wl-2', type: WLO, waterLevel: 3.6 }, { id: 'wl-5', type: WLO, waterLevel: 0.5 }],
  }, { keyValues: true });
  r = await town.listEntities({ id: ['wl-2', 'wl-5'], attrs: ['waterLevel'], keyValues: true });
  assert.deepEqual(r.results, [{ id: 'wl-2', type: WLO, waterLevel: 3.6 },
    { id: 'wl-5', type: WLO, waterLevel: 0.5 }], 'after update');

  // An entity without attributes is deleted; with attributes, those are.
  await town.batchUpdate({
    actionType: 'delete',
    entities: [{ id: 'wl-5', type: WLO }, { id: 'wl-1', type: WLO, alert: {} }],
  });
  await rejects(town.getEntity({ id: 'wl-5' }), NGSI.NotFoundError, 'wl-5 after delete');
  r = await town.getEntityAttributes({ id: 'wl-1', keyValues: true });
  assert.deepEqual(r.attributes, { waterLevel: 2.9, river: 'Kasuga', status: 'watch' },
    'wl-1 without alert');

  // An update of an entity that does not exist (Orion: 404), not mapped by
  // ngsijs's batchUpdate.
  await rejectsWithStatus(town.batchUpdate({ actionType: 'update',
    entities: [{ id: 'wl-9', type: WLO, waterLevel: { value: 1 } }] }), 404,
  'batch update of a missing entity');
});

test('batchQuery: entities, attrs and an expression', async () => {
  const query = {
    entities: [{ idPattern: '^wl-', type: WLO }],
    attrs: ['waterLevel'],
    expression: { q: 'waterLevel>=2.7' },
  };
  let r = await town.batchQuery(structuredClone(query), { orderBy: '!waterLevel', count: true });
  assert.deepEqual(r.results, [
    { id: 'wl-4', type: WLO, waterLevel: num(4.1) },
    { id: 'wl-2', type: WLO, waterLevel: num(3.6) },
    { id: 'wl-1', type: WLO, waterLevel: num(2.9) },
    { id: 'wl-3', type: WLO, waterLevel: num(2.7) },
  ]);
  assert.equal(r.count, 4, 'count (Fiware-Total-Count)');
  r = await town.batchQuery(structuredClone(query),
    { orderBy: 'waterLevel', keyValues: true, limit: 2, offset: 1, count: true });
  assert.deepEqual(r.results, [{ id: 'wl-1', type: WLO, waterLevel: 2.9 },
    { id: 'wl-2', type: WLO, waterLevel: 3.6 }], 'keyValues, second page of two');
  assert.equal(r.count, 4);
  r = await town.batchQuery({ entities: [{ id: 'wl-2', type: WLO }, { id: 'wl-4' }],
    attrs: ['river'] }, { keyValues: true });
  assert.deepEqual(r.results, [{ id: 'wl-2', type: WLO, river: 'Shin' },
    { id: 'wl-4', type: WLO, river: 'Koto' }], 'two entities by id');
});

// ------------------------------------------------------------------ geography

test('geo query: which shelters are within 2 km of Takamatsu station, nearest first', async () => {
  await town.batchUpdate({
    actionType: 'append',
    entities: SHELTER_ENTITIES.map((s) => ({
      id: s.id,
      type: 'Shelter',
      name: { type: 'Text', value: s.id.replace('shelter-', '') },
      location: point(s.lat, s.lon),
    })),
  }, { servicepath: SHELTERS });

  const near = { type: 'Shelter', georel: 'near;maxDistance:2000', geometry: 'point',
    coords: STATION, servicepath: SHELTERS };
  let r = await town.listEntities({ ...near, count: true });
  const within = SHELTER_ENTITIES.filter((s) => s.km < 2).sort((a, b) => a.km - b.km);
  assert.deepEqual(ids(r.results), ids(within), 'within 2 km, nearest first');
  assert.equal(r.count, within.length, 'count');
  assert.deepEqual(r.results[0].location, { ...point(within[0].lat, within[0].lon), metadata: {} },
    'location as created, geo:json');

  r = await town.listEntities({ ...near, georel: 'near;minDistance:1000;maxDistance:2000',
    keyValues: true, attrs: 'name' });
  assert.deepEqual(r.results, [{ id: 'shelter-kawaramachi', type: 'Shelter', name: 'kawaramachi' },
    { id: 'shelter-ritsurin', type: 'Shelter', name: 'ritsurin' }], 'between 1 and 2 km');

  r = await town.listEntities({ type: 'Shelter', servicepath: SHELTERS });
  assert.equal(r.results.length, SHELTER_ENTITIES.length, 'every shelter under /shelters');
  r = await town.listEntities({ type: 'Shelter' });
  assert.deepEqual(r.results, [], 'no shelter under /sensors');
  r = await town.listEntities({ type: 'Shelter,WaterLevelObserved', servicepath: '/#',
    count: true, limit: 1 });
  assert.equal(r.count, SHELTER_ENTITIES.length + 4, 'both paths under /#');
});

// ---------------------------------------------------------------------- types

test('listTypes and getType', async () => {
  let r = await town.listTypes({ count: true });
  assert.deepEqual(r.results.map((t) => t.type), [WLO], 'the types under /sensors');
  assert.equal(r.count, 1);
  const t = r.results[0];
  assert.equal(t.count, 4, 'entities of the type');
  assert.deepEqual(t.attrs.waterLevel, { types: ['Number'] });
  assert.deepEqual(t.attrs.river, { types: ['Text'] });

  r = await town.getType(WLO);
  assert.equal(r.type.count, 4);
  assert.deepEqual(Object.keys(r.type.attrs).sort(), ['river', 'status', 'waterLevel']);
  assert.deepEqual(r.type.attrs.waterLevel, { types: ['Number'] });

  r = await town.listTypes({ servicepath: SHELTERS });
  assert.deepEqual(r.results.map((x) => x.type), ['Shelter'], 'the types under /shelters');
  r = await town.getType({ id: 'Shelter', servicepath: SHELTERS });
  assert.deepEqual(r.type, { attrs: { location: { types: ['geo:json'] },
    name: { types: ['Text'] } }, count: SHELTER_ENTITIES.length });
  await rejects(town.getType('Nothing'), NGSI.NotFoundError, 'a type without entities');
});

// ---------------------------------------------------------------- subscriptions

// A subscriber: every POST it receives, with its path, headers and JSON body.
const received = [];
let subscriber;
let subscriberUrl;

async function startSubscriber() {
  subscriber = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body;
      try {
        body = JSON.parse(raw);
      } catch {
        body = { unparsable: raw };
      }
      received.push({ method: req.method, path: req.url, headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => subscriber.listen(0, '127.0.0.1', resolve));
  subscriberUrl = `http://127.0.0.1:${subscriber.address().port}`;
}

after(async () => {
  if (subscriber) {
    subscriber.closeAllConnections();
    await new Promise((resolve) => subscriber.close(resolve));
  }
});

// The first notification received on path whose data holds entity id with
// match(entity) true; fails after the deadline.
async function notification(path, id, match, what) {
  const deadline = Date.now() + NOTIFY_DEADLINE_MS;
  for (;;) {
    const n = received.find((x) => x.path === path &&
      x.body?.data?.some?.((e) => e.id === id && match(e)));
    if (n) return n;
    if (Date.now() > deadline) {
      assert.fail(`${what}: no notification within ${NOTIFY_DEADLINE_MS} ms; received ` +
        JSON.stringify(received.map((x) => ({ path: x.path, body: x.body }))).slice(0, 2000));
    }
    await sleep(100);
  }
}

test('subscriptions: create, notify, get, list, deactivate, delete', async () => {
  await startSubscriber();

  // The subscription under test: water levels over 3 m, normalized.
  const created = await town.createSubscription({
    description: 'river levels for the flood desk',
    subject: {
      entities: [{ idPattern: '^wl-', type: WLO }],
      condition: { attrs: ['waterLevel'], expression: { q: 'waterLevel>3' } },
    },
    notification: {
      http: { url: `${subscriberUrl}/levels` },
      attrs: ['waterLevel'],
      attrsFormat: 'normalized',
    },
  });
  const subId = created.subscription.id;
  assert.match(subId ?? '', /^[0-9a-f]{24}$/, 'an Orion-style subscription id');
  assert.equal(created.location, `/v2/subscriptions/${subId}`, 'Location');

  // A control subscription of every change of every sensor, in keyValues:
  // it shows when a change has been through the notifier.
  const control = await town.createSubscription({
    subject: { entities: [{ idPattern: '^wl-', type: WLO }] },
    notification: { http: { url: `${subscriberUrl}/control` }, attrsFormat: 'keyValues' },
  });
  const controlId = control.subscription.id;

  await town.updateEntityAttributes({ id: 'wl-2', waterLevel: { type: 'Number', value: 3.9 } },
    { correlator: 'ngsijs-notify-1' });
  const n = await notification('/levels', 'wl-2', (e) => e.waterLevel?.value === 3.9,
    'wl-2 at 3.9');
  assert.equal(n.method, 'POST');
  assert.deepEqual(n.body, {
    subscriptionId: subId,
    data: [{ id: 'wl-2', type: WLO, waterLevel: num(3.9) }],
  }, 'the notification: the subscription and the notified attributes');
  assert.match(n.headers['content-type'] ?? '', /^application\/json/, 'Content-Type');
  assert.equal(n.headers['fiware-service'], TOWN, 'Fiware-Service');
  assert.equal(n.headers['fiware-servicepath'], SENSORS, 'Fiware-ServicePath');
  assert.equal(n.headers['ngsiv2-attrsformat'], 'normalized', 'Ngsiv2-AttrsFormat');
  assert.match(n.headers['fiware-correlator'] ?? '', /^ngsijs-notify-1/,
    'Fiware-Correlator of the change');

  const c = await notification('/control', 'wl-2', (e) => e.waterLevel === 3.9, 'control at 3.9');
  assert.equal(c.body.subscriptionId, controlId);
  assert.deepEqual(c.body.data, [{ id: 'wl-2', type: WLO, waterLevel: 3.9, river: 'Shin',
    status: 'normal' }], 'keyValues, every attribute');
  assert.equal(c.headers['ngsiv2-attrsformat'], 'keyValues');

  // A change of another attribute does not meet the condition, nor a
  // level that does not meet the expression.
  const before = received.filter((x) => x.path === '/levels').length;
  await town.updateEntityAttributes({ id: 'wl-2', status: { type: 'Text', value: 'watch' } });
  await notification('/control', 'wl-2', (e) => e.status === 'watch', 'control, status watch');
  await town.updateEntityAttributes({ id: 'wl-3', waterLevel: { type: 'Number', value: 2.75 } });
  await notification('/control', 'wl-3', (e) => e.waterLevel === 2.75, 'control, wl-3 at 2.75');

  let r = await town.getSubscription(subId);
  assert.equal(r.subscription.id, subId);
  assert.equal(r.subscription.description, 'river levels for the flood desk');
  assert.equal(r.subscription.status, 'active');
  assert.deepEqual(r.subscription.subject.entities, [{ idPattern: '^wl-', type: WLO }]);
  assert.deepEqual(r.subscription.subject.condition.attrs, ['waterLevel']);
  assert.deepEqual(r.subscription.subject.condition.expression, { q: 'waterLevel>3' });
  assert.deepEqual(r.subscription.notification.http, { url: `${subscriberUrl}/levels` });
  assert.deepEqual(r.subscription.notification.attrs, ['waterLevel']);
  assert.equal(r.subscription.notification.attrsFormat, 'normalized');

  r = await town.listSubscriptions({ count: true });
  assert.deepEqual(r.results.map((s) => s.id), [subId, controlId], 'creation order');
  assert.equal(r.count, 2, 'count (Fiware-Total-Count)');

  // Inactive: the next change of waterLevel is not notified.
  await town.updateSubscription({ id: subId, status: 'inactive' });
  r = await town.getSubscription({ id: subId });
  assert.equal(r.subscription.status, 'inactive');
  await town.updateEntityAttributes({ id: 'wl-2', waterLevel: { type: 'Number', value: 4.2 } });
  await notification('/control', 'wl-2', (e) => e.waterLevel === 4.2, 'control at 4.2');
  await sleep(1000); // the notifier had this change; give a stray notification time to show
  const levels = received.filter((x) => x.path === '/levels');
  assert.equal(levels.length, before,
    `no notification for status, for 2.75, nor while inactive: ${JSON.stringify(
      levels.slice(before).map((x) => x.body))}`);

  await town.deleteSubscription(subId);
  await town.deleteSubscription({ id: controlId });
  await rejects(town.getSubscription(subId), NGSI.NotFoundError, 'the deleted subscription');
  await rejects(town.deleteSubscription(subId), NGSI.NotFoundError, 'deleting it again');
  r = await town.listSubscriptions();
  assert.deepEqual(r.results, [], 'no subscription left');
});

// ------------------------------------------------------------ deleting entities

test('deleteEntity; getEntity of a deleted entity: NotFoundError', async () => {
  await town.deleteEntity({ id: 'wl-4', type: WLO });
  const err = await rejects(town.getEntity('wl-4'), NGSI.NotFoundError, 'the deleted wl-4');
  assert.equal(typeof err.message, 'string');
  await rejects(town.deleteEntity('wl-4'), NGSI.NotFoundError, 'deleting wl-4 again');
  const r = await town.listEntities({ type: WLO, count: true });
  assert.deepEqual(ids(r.results), ['wl-1', 'wl-2', 'wl-3']);
  assert.equal(r.count, 3);
});

// ---------------------------------------------------------------- isolation

test("another town: 403 with takamatsu's Fiware-Service, its own store without it", async () => {
  need(other, "marugame's connection");
  const asTakamatsu = { service: TOWN, servicepath: SENSORS };
  await rejectsWithStatus(other.listEntities({ ...asTakamatsu, type: WLO }), 403,
    "marugame listing takamatsu's entities");
  await rejectsWithStatus(other.getEntity({ ...asTakamatsu, id: 'wl-1' }), 403,
    "marugame reading takamatsu's wl-1");
  await rejectsWithStatus(other.createEntity({ id: 'intruder', type: WLO,
    waterLevel: { value: 99 } }, asTakamatsu), 403, 'marugame creating in takamatsu');
  await rejectsWithStatus(other.batchQuery({ entities: [{ idPattern: '.*' }] }, asTakamatsu),
    403, "marugame's batch query in takamatsu");
  // 403 as Orion-style JSON (ngsijs shows only the status).
  const res = await fetch(`${HUB_URL}/v2/entities`, {
    headers: { Authorization: `Bearer ${otherToken}`, 'Fiware-Service': TOWN },
  });
  assert.equal(res.status, 403);
  assert.equal(res.headers.get('content-type'), 'application/json');
  assert.equal((await res.json()).error, 'Forbidden');

  await rejects(town.getEntity({ id: 'intruder', servicepath: '/#' }), NGSI.NotFoundError,
    'nothing was created in takamatsu');

  // Without Fiware-Service: marugame's own store, which holds none of it.
  let r = await other.listEntities({ servicepath: '/#', count: true });
  assert.deepEqual(r.results, [], "marugame's store is empty");
  assert.equal(r.count, 0);
  await rejects(other.getEntity('wl-1'), NGSI.NotFoundError, 'wl-1 from marugame');
  r = await other.listTypes();
  assert.deepEqual(r.results, [], 'no types in marugame');

  // The same id in both towns: two entities.
  await other.createEntity({ id: 'wl-1', type: WLO, waterLevel: { type: 'Number', value: 0.3 } });
  r = await other.listEntities({ keyValues: true, servicepath: '/#' });
  assert.deepEqual(r.results, [{ id: 'wl-1', type: WLO, waterLevel: 0.3 }], "marugame's wl-1");
  r = await other.listEntities({ keyValues: true, service: OTHER_TOWN, attrs: 'waterLevel' });
  assert.deepEqual(r.results, [{ id: 'wl-1', type: WLO, waterLevel: 0.3 }],
    'with its own Fiware-Service');
  const mine = await town.getEntityAttributeValue({ id: 'wl-1', attribute: 'waterLevel' });
  assert.equal(mine.value, 2.9, "takamatsu's wl-1 is unchanged");
});

// -------------------------------------------------------------- bad requests

test('bad requests: BadRequestError (or the 400 ngsijs does not map)', async () => {
  for (const id of ['wl 9', 'wl(9)', 'wl#9', 'wl?9', 'é']) {
    const err = await rejects(town.createEntity({ id, type: WLO }), NGSI.BadRequestError,
      `createEntity id ${JSON.stringify(id)}`);
    assert.ok(err.message.length > 0, `${JSON.stringify(id)}: the hub's description`);
  }
  await rejects(town.createEntity({ id: 'wl-9', type: WLO, 'water level': { value: 1 } }),
    NGSI.BadRequestError, 'an attribute name with a space');
  await rejects(town.batchQuery({ entities: [{ idPattern: '^wl-' }],
    expression: { q: 'waterLevel>1..3' } }), NGSI.BadRequestError, 'a range with >');
  await rejects(town.batchQuery({ entities: [{ idPattern: '^wl-' }],
    expression: { q: 'waterLevel==' } }), NGSI.BadRequestError, 'an empty right-hand side');
  await rejects(town.batchUpdate({ actionType: 'upsert', entities: [{ id: 'wl-1' }] }),
    NGSI.BadRequestError, 'an unknown actionType');
  await rejectsWithStatus(town.listEntities({ q: 'waterLevel==' }), 400,
    'listEntities with an invalid q');
  await rejectsWithStatus(town.listEntities({ georel: 'near;maxDistance:2000', geometry: 'point',
    coords: '134.0467' }), 400, 'listEntities with incomplete coords');
  await rejects(town.createSubscription({ subject: { entities: [{ id: 'wl-1' }] },
    notification: { http: { url: 'not a url' } } }), NGSI.BadRequestError,
  'a subscription with an invalid URL');
});

// -------------------------------------------------- the data exchange (issue 8)

test('another town under an agreement: narrowed to the agreed type and attribute', async () => {
  need(other, "marugame's connection");
  const otherToken = await token(NGSI_OTHER_CLIENT_ID, NGSI_OTHER_CLIENT_SECRET);
  // run.sh approved: takamatsu → marugame, WaterLevelObserved, attrs waterLevel, flood-watch
  const viaHub = new NGSI.Connection(HUB_URL, {
    headers: { Authorization: `Bearer ${otherToken}`, 'Renkei-Purpose': 'flood-watch' },
  }).v2;
  const r = await viaHub.listEntities({ service: TOWN, servicepath: '/#', count: true,
    keyValues: true, limit: 1000 });
  assert.ok(r.results.length > 0, "marugame reads takamatsu's water levels");
  assert.equal(r.count, r.results.length, 'the count is of the narrowed query');
  for (const e of r.results) {
    assert.equal(e.type, WLO, `${e.id}: only the agreed type`);
    assert.deepEqual(Object.keys(e).sort(), ['id', 'type', 'waterLevel'].filter((k) => k in e),
      `${e.id}: only the agreed attribute`);
  }
  assert.deepEqual(r.results.find((e) => e.id === 'wl-1'), { id: 'wl-1', type: WLO, waterLevel: 2.9 });
  const one = await viaHub.getEntity({ id: 'wl-1', type: WLO, service: TOWN, servicepath: '/#' });
  assert.deepEqual(Object.keys(one.entity).sort(), ['id', 'type', 'waterLevel'], 'one entity, filtered');
  await rejectsWithStatus(viaHub.listEntities({ service: TOWN, type: 'Shelter' }), 403,
    'a type the agreement does not cover');
  await rejectsWithStatus(viaHub.createEntity({ id: 'intruder2', type: WLO }, { service: TOWN }), 403,
    'a write under a read agreement');
  // the catalogue says what marugame may read
  const cat = await fetch(`${HUB_URL}/exchange/v1/catalog`, { headers: { Authorization: `Bearer ${otherToken}` } });
  assert.equal(cat.status, 200);
  const items = (await cat.json()).items;
  assert.ok(items.some((i) => i.provider === TOWN && i.entity_types.includes(WLO) &&
    i.purposes.includes('flood-watch')), 'the catalogue lists the agreement');
});
