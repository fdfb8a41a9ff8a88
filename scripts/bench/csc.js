// csc.js - scripts/bench_csc.sh's Node.js client: one process doing GET name
// in a loop, with node-redis's client-side cache (CLIENT TRACKING) on or off,
// and the time from a PUBLISH on Redis to the new value being what GET
// returns. Prints one line of key=value figures.
//   node csc.js reads SOCKET NAME SECONDS on|off
//   node csc.js latency SOCKET NAME COUNT REDIS_SOCKET CHANNEL TENANT KIND KEY
'use strict';
const redis = require('redis');
const [mode, socket, name] = process.argv.slice(2, 5);

async function reads(seconds, cache) {
  const options = { socket: { path: socket } };
  if (cache === 'on') {
    options.RESP = 3;
    options.clientSideCache = { ttl: 0, maxEntries: 0, evictPolicy: 'LRU' };
  }
  const client = await redis.createClient(options).connect();
  await client.get(name);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(Math.round(seconds * 1e9));
  let count = 0;
  for (;;) {
    for (let i = 0; i < 1000; i++) await client.get(name);
    count += 1000;
    if (process.hrtime.bigint() >= end) break;
  }
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  console.log(`reads=${count} seconds=${elapsed.toFixed(3)} rate=${(count / elapsed).toFixed(0)} ` +
              `client_cpu_us_per_read=${((cpu.user + cpu.system) / count).toFixed(3)}`);
  await client.disconnect();
}

async function latency(count, redisSocket, channel, tenant, kind, key) {
  const client = await redis.createClient({
    socket: { path: socket }, RESP: 3,
    clientSideCache: { ttl: 0, maxEntries: 0, evictPolicy: 'LRU' },
  }).connect();
  const publisher = await redis.createClient({ socket: { path: redisSocket } }).connect();
  const samples = [];
  for (let i = 1; i <= count; i++) {
    const value = String(1000000 + i);
    const t0 = process.hrtime.bigint();
    await publisher.publish(channel, JSON.stringify({ op: 'set', tenant, kind, key, value: Number(value) }));
    while ((await client.get(name)) !== value) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    samples.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  console.log(`samples=${samples.length} p50_us=${at(0.5).toFixed(0)} p99_us=${at(0.99).toFixed(0)} ` +
              `hits=${client.clientSideCache.stats().hitCount}`);
  await client.disconnect();
  await publisher.disconnect();
}

(mode === 'reads' ? reads(Number(process.argv[5]), process.argv[6])
                  : latency(Number(process.argv[5]), ...process.argv.slice(6)))
  .then(() => process.exit(0))
  .catch((error) => { console.error(error); process.exit(1); });
