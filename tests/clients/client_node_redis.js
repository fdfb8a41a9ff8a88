// node-redis with its default options against the daemon; argv[2] is the
// package: "redis4" (node-redis 4, installed as an alias) or "redis" (the
// current major). One line "ok LIB STEP" / "FAIL LIB STEP: why" per step.
'use strict';
const { exec } = require('child_process');
const run = require('util').promisify(exec);
const pkg = process.argv[2];
const redis = require(pkg);
const lib = pkg === 'redis' ? 'node-redis' : 'node-redis4';
const SOCKET = process.env.TC_SOCKET;
const NAME = 'cache:acme:credit:crm.leads.create';
let failures = 0;

function expect(got, wanted) {
  if (JSON.stringify(got) !== JSON.stringify(wanted))
    throw new Error(`expected ${JSON.stringify(wanted)}, got ${JSON.stringify(got)}`);
}

async function main() {
  // The lines of the README's "From your language", Node.js.
  const client = redis.createClient({ socket: { path: SOCKET } });
  client.on('error', () => {}); // reconnects are reported here; they are expected
  const steps = {
    connect: async () => {
      await client.connect();
      expect(await client.ping(), 'PONG');
    },
    get: async () => {
      expect(await client.get(NAME), '3.5');
      expect(await client.get('cache:acme:credit:nope'), null);
    },
    can: async () => {
      expect(await client.sendCommand(['CAN', 'acme', 'alice', 'crm.leads.create']), 1);
      expect(await client.sendCommand(['CAN', 'acme', 'nobody', 'crm.leads.create']), null);
    },
    pipeline: async () => {
      const replies = await Promise.all(Array.from({ length: 100 }, () => client.get(NAME)));
      expect(replies, Array(100).fill('3.5'));
      const batch = client.multi();
      for (let i = 0; i < 100; i++) batch.get(NAME);
      expect(await batch.execAsPipeline(), Array(100).fill('3.5'));
    },
    transaction: async () => {
      const replies = await client.multi()
        .get(NAME)
        .addCommand(['CAN', 'acme', 'alice', 'crm.leads.create'])
        .addCommand(['CREDIT', 'acme', 'crm.leads.create'])
        .exec();
      expect(replies, ['3.5', 1, '3.5']);
    },
    'client-name': async () => {
      const named = redis.createClient({ name: 'node-app', socket: { path: SOCKET } });
      await named.connect();
      expect(await named.sendCommand(['CLIENT', 'GETNAME']), 'node-app');
      await named.quit();
    },
    pool: async () => {
      if (typeof redis.createClientPool === 'function') {
        const pool = redis.createClientPool({ socket: { path: SOCKET } }, { minimum: 4, maximum: 8 });
        await pool.connect();
        const replies = await Promise.all(Array.from({ length: 200 }, () => pool.get(NAME)));
        expect(replies, Array(200).fill('3.5'));
        await pool.close();
      } else {
        const pooled = redis.createClient({ socket: { path: SOCKET }, isolationPoolOptions: { min: 4, max: 8 } });
        await pooled.connect();
        const replies = await Promise.all(Array.from({ length: 200 },
          () => pooled.executeIsolated((isolated) => isolated.get(NAME))));
        expect(replies, Array(200).fill('3.5'));
        await pooled.quit();
      }
    },
    error: async () => {
      try {
        await client.sendCommand(['CAN', 'acme']);
      } catch (error) {
        expect(error.message, "ERR wrong number of arguments for 'CAN'");
        return;
      }
      throw new Error('no error');
    },
    reconnect: async () => {
      await run(process.env.TC_RESTART); // the event loop runs on: the client sees the close
      expect(await client.get(NAME), '3.5');
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
  process.exit(failures ? 1 : 0);
}

main().catch((error) => {
  console.log(`FAIL ${lib}: ${error && error.stack}`);
  process.exit(1);
});
