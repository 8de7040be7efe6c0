// Slow and many clients for tests/integration/test_overload.sh.
//
//   node slow_clients.mjs slow PORT FROM N SECONDS
//     opens N connections from address FROM that send a request's headers,
//     or a body, a byte at a time every 500 ms for SECONDS (slowloris);
//     prints JSON: {opened, refused, closed_early, open_at_end}
//   node slow_clients.mjs burst PORT N PATH HEADERS_JSON [BODY]
//     sends N requests at once on N connections (GET PATH with the headers;
//     POST with BODY when one is given) and waits for every answer; prints
//     JSON: {statuses: {"200": n, ...}, no_answer, samples: {"200": the
//     first whole answer with that status, ...}}
import net from 'node:net';

const [mode, portArg, ...rest] = process.argv.slice(2);
const port = Number(portArg);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function slow(from, n, secs) {
  const socks = [];
  let refused = 0;
  let closedEarly = 0;
  for (let i = 0; i < n; i++) {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: from });
    const st = { s, open: false, closed: false };
    s.on('connect', () => { st.open = true; });
    s.on('error', () => { if (!st.open) refused++; });
    s.on('close', () => { if (st.open && !st.closed) closedEarly++; st.closed = true; });
    s.on('data', () => {});
    socks.push(st);
  }
  await sleep(500);
  // half trickle headers, half announce a body and trickle it
  const heads = socks.map((st, i) => (i % 2
    ? 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: '
    : 'POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\ngrant_type='));
  socks.forEach((st, i) => { if (st.open && !st.closed) st.s.write(heads[i]); });
  const end = Date.now() + secs * 1000;
  while (Date.now() < end) {
    await sleep(500);
    for (const st of socks) if (st.open && !st.closed) st.s.write('a');
  }
  const openAtEnd = socks.filter((st) => st.open && !st.closed).length;
  const opened = socks.filter((st) => st.open).length;
  for (const st of socks) st.s.destroy();
  console.log(JSON.stringify({ opened, refused, closed_early: closedEarly, open_at_end: openAtEnd }));
}

async function burst(n, path, headers, body) {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const req = body === undefined
    ? `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${lines}Connection: close\r\n\r\n`
    : `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${lines}Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `Connection: close\r\n\r\n${body}`;
  const statuses = {};
  const samples = {};
  let noAnswer = 0;
  await Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    s.setEncoding('latin1');
    s.on('connect', () => s.write(req));
    s.on('data', (d) => { buf += d; });
    s.on('error', () => {});
    s.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m) {
        statuses[m[1]] = (statuses[m[1]] || 0) + 1;
        if (!(m[1] in samples)) samples[m[1]] = buf;
      } else noAnswer++;
      resolve();
    });
    s.setTimeout(60000, () => s.destroy());
  })));
  console.log(JSON.stringify({ statuses, no_answer: noAnswer, samples }));
}

if (mode === 'slow') await slow(rest[0], Number(rest[1]), Number(rest[2]));
else if (mode === 'burst') await burst(Number(rest[0]), rest[1], JSON.parse(rest[2] || '{}'), rest[3]);
else { console.error('usage: slow_clients.mjs slow|burst ...'); process.exit(2); }
