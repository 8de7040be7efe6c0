// Start-to-ready time and idle memory of the hub. Starts BIN serve RUNS
// times (the environment passes through: RENKEI_DB and the rest), polls
// GET /readyz on one kept-alive connection every millisecond from the
// moment of spawn until it answers 200, then reads the process's resident
// memory after SETTLE_MS of idleness, and stops it with SIGTERM.
// usage: node ops/bench/startup.mjs BIN PORT [RUNS=10] [SETTLE_MS=2000]
// prints JSON: {runs, ready_ms: [...], p50_ms, max_ms, idle_rss_kb, idle_peak_kb}
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';

const [bin, port, runsArg, settleArg] = process.argv.slice(2);
const runs = Number(runsArg || 10);
const settle = Number(settleArg || 2000);
let agent = null;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function ready() {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/readyz', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('error', () => resolve(false));
    req.setTimeout(500, () => req.destroy());
  });
}

function status(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((s.match(new RegExp(`${k}:\\s+(\\d+)`)) || [])[1]);
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

const times = [];
let idle = null;
for (let i = 0; i < runs; i++) {
  agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const t0 = process.hrtime.bigint();
  const child = spawn(bin, ['serve'], {
    env: { ...process.env, RENKEI_LISTEN: `127.0.0.1:${port}` },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  let up = false;
  while (!up) {
    if (Number(process.hrtime.bigint() - t0) / 1e6 > 10000) throw new Error('the hub did not become ready in 10 s');
    up = await ready();
    if (!up) await sleep(1);
  }
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (i === runs - 1) {
    await sleep(settle);
    idle = status(child.pid);
  }
  agent.destroy();
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGTERM');
  await exited;
}
const sorted = [...times].sort((a, b) => a - b);
console.log(JSON.stringify({
  runs,
  ready_ms: times.map((t) => Math.round(t * 10) / 10),
  p50_ms: Math.round(sorted[Math.floor(runs / 2)] * 10) / 10,
  max_ms: Math.round(sorted[runs - 1] * 10) / 10,
  idle_rss_kb: idle.rss,
  idle_peak_kb: idle.peak,
}));
