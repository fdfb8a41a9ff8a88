// node-redis (current major) with its client-side cache on (RESP: 3,
// clientSideCache), and with emitInvalidate: the daemon's CLIENT TRACKING
// pushes keep the library's in-process cache coherent. One line "ok LIB STEP"
// / "FAIL LIB STEP: why" per step. TC_REDIS is the Redis socket the daemon
// subscribes on: the test publishes there, and cuts the daemon off Redis
// (CLIENT KILL TYPE pubsub while no new connection is let in) to pass max_stale.
'use strict';
const redis = require('redis');
const lib = 'node-redis-csc';
const SOCKET = process.env.TC_SOCKET;
const NAME = 'cache:acme:credit:csc';
const CHANNEL = 'tenantcached:invalidate';
let failures = 0;

function expect(got, wanted) {
  if (JSON.stringify(got) !== JSON.stringify(wanted))
    throw new Error(`expected ${JSON.stringify(wanted)}, got ${JSON.stringify(got)}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls until check() is true (no timed assertion: 10 s is only a bound).
async function until(what, check) {
  for (let i = 0; i < 2000; i++) {
    if (await check()) return;
    await sleep(5);
  }
  throw new Error(`never: ${what}`);
}

function setMessage(key, value) {
  return JSON.stringify({ op: 'set', tenant: 'acme', kind: 'credit', key, value });
}

async function main() {
  const publisher = redis.createClient({ socket: { path: process.env.TC_REDIS } });
  await publisher.connect();
  const client = redis.createClient({
    socket: { path: SOCKET },
    RESP: 3,
    clientSideCache: { ttl: 0, maxEntries: 0, evictPolicy: 'LRU' },
  });
  client.on('error', () => {});
  const csc = () => client.clientSideCache;
  const steps = {
    connect: async () => {
      await client.connect();
      await publisher.publish(CHANNEL, setMessage('csc', 1));
      await until('the set is applied', async () => (await client.get(NAME)) === '1');
    },
    'cache-hit': async () => {
      const before = csc().stats().hitCount;
      expect(await client.get(NAME), '1');
      expect(await client.get(NAME), '1');
      if (csc().stats().hitCount < before + 2)
        throw new Error(`hits ${before} -> ${csc().stats().hitCount}`);
    },
    'set-invalidates': async () => {
      expect(await client.get(NAME), '1');
      await publisher.publish(CHANNEL, setMessage('csc', 2));
      // Served from the library's memory until the push arrives, then read anew.
      await until('the new value', async () => (await client.get(NAME)) === '2');
      const hits = csc().stats().hitCount;
      expect(await client.get(NAME), '2');
      expect(csc().stats().hitCount, hits + 1);
    },
    'flush-invalidates-all': async () => {
      expect(await client.get(NAME), '2');
      expect(await client.get('cache:acme:credit:crm.leads.create'), '3.5');
      if (csc().size() < 2) throw new Error(`cache size ${csc().size()}`);
      await publisher.publish(CHANNEL, JSON.stringify({ op: 'flush', tenant: '*' }));
      await until('the cache is empty', async () => csc().size() === 0);
    },
    'emit-invalidate': async () => {
      const listener = redis.createClient({ socket: { path: SOCKET }, RESP: 3, emitInvalidate: true });
      listener.on('error', () => {});
      await listener.connect();
      const heard = [];
      listener.on('invalidate', (key) => heard.push(key === null ? null : key.toString()));
      await listener.get(NAME);
      await publisher.publish(CHANNEL, setMessage('csc', 3));
      await until('the invalidate event', async () => heard.length > 0);
      expect(heard, [NAME]);
      await listener.disconnect();
    },
    'stale-invalidates-all': async () => {
      // Critical data, so the daemon will refuse it once stale.
      await until('the value', async () => (await client.get(NAME)) === '3');
      if (csc().size() < 1) throw new Error('nothing cached');
      const admin = redis.createClient({ socket: { path: process.env.TC_REDIS } });
      await admin.connect();
      const count = (await admin.sendCommand(['CLIENT', 'LIST'])).trim().split('\n').length;
      await admin.sendCommand(['CONFIG', 'SET', 'maxclients', String(count - 1)]);
      await admin.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
      try {
        // max_stale is 2s in the suite's config.
        await until('the cache is emptied', async () => csc().size() === 0);
        let refused = null;
        try { await client.get(NAME); } catch (error) { refused = error.message; }
        if (!refused || !refused.startsWith('STALE')) throw new Error(`GET gave ${refused}`);
      } finally {
        await admin.sendCommand(['CONFIG', 'SET', 'maxclients', '10000']);
        await admin.disconnect();
      }
      await until('the stream is back', async () => {
        try { return (await client.get(NAME)) !== undefined; } catch (error) { return false; }
      });
    },
  };
  for (const [name, step] of Object.entries(steps)) {
    try {
      await step();
      console.log(`ok ${lib} ${name}`);
    } catch (error) {
      failures++;
      console.log(`FAIL ${lib} ${name}: ${error && error.message}`);
    }
  }
  await client.disconnect().catch(() => {});
  await publisher.disconnect().catch(() => {});
  process.exit(failures ? 1 : 0);
}

main().catch((error) => {
  console.log(`FAIL ${lib}: ${error && error.stack}`);
  process.exit(1);
});
