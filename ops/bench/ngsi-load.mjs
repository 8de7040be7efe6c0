// Bulk load for ops/bench/ngsi: WaterLevelObserved entities FROM..TO-1 into
// the hub's hosted store through POST /v2/op/update (actionType append),
// BATCH entities per request, CONC requests in flight. Prints one JSON line:
// {"entities", "seconds", "per_s", "batches", "failed", "retried"}. A batch
// whose connection the hub closes without a reply is sent again (append is
// an upsert, so a batch applied twice holds the same entities).
// usage: node ngsi-load.mjs BASE TOKEN FROM TO [BATCH=1000] [CONC=4]
//
// Entity i (the same on every run, so the bench is repeatable):
//   id wlo-NNNNNNN, station S0000..S0999 (i mod 1000: the equality filter
//   matches 1 in 1000), waterLevel 0.000..4.999 m (the range filter),
//   alertLevel from waterLevel, a geo:json Point in Takamatsu, dateObserved.
const [base, token, from, to, batchArg, concArg] = process.argv.slice(2);
if (!base || !token || from === undefined || to === undefined) {
  console.error("usage: node ngsi-load.mjs BASE TOKEN FROM TO [BATCH] [CONC]");
  process.exit(2);
}
const first = Number(from), end = Number(to);
const batch = Number(batchArg || 1000), conc = Number(concArg || 4);

function entity(i) {
  const level = ((i * 7919) % 5000) / 1000;
  const alert = level >= 4 ? "danger" : level >= 3 ? "warning" : level >= 2 ? "caution" : "normal";
  const lon = 133.95 + ((i * 104729) % 20000) / 100000; // 133.95..134.15
  const lat = 34.25 + ((i * 1299709) % 10000) / 100000; // 34.25..34.35
  return {
    id: "wlo-" + String(i).padStart(7, "0"),
    type: "WaterLevelObserved",
    station: { type: "Text", value: "S" + String(i % 1000).padStart(4, "0") },
    waterLevel: { type: "Number", value: level },
    alertLevel: { type: "Text", value: alert },
    location: { type: "geo:json", value: { type: "Point", coordinates: [lon, lat] } },
    dateObserved: { type: "DateTime", value: "2025-06-30T09:00:00.000Z" },
  };
}

let next = first, failed = 0, batches = 0, retried = 0;
async function worker() {
  for (;;) {
    const lo = next;
    if (lo >= end) return;
    const hi = Math.min(lo + batch, end);
    next = hi;
    const entities = [];
    for (let i = lo; i < hi; i++) entities.push(entity(i));
    const body = JSON.stringify({ actionType: "append", entities });
    let r, text;
    for (let attempt = 1; ; attempt++) {
      try {
        r = await fetch(base + "/v2/op/update", {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
          body,
        });
        text = await r.text();
        break;
      } catch (e) {
        if (attempt === 3) throw e;
        retried++;
        console.error(`op/update ${lo}..${hi}: ${e.cause?.message || e.message}; sending again`);
      }
    }
    batches++;
    if (r.status !== 204) {
      failed += hi - lo;
      if (failed === hi - lo) console.error(`op/update ${lo}..${hi}: ${r.status} ${text.slice(0, 300)}`);
    }
  }
}

const t0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: conc }, worker));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const n = end - first;
console.log(JSON.stringify({ entities: n, seconds: +secs.toFixed(2), per_s: Math.round(n / secs), batches, failed, retried }));
