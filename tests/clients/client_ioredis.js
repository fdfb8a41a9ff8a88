// ioredis with its default options against the daemon. One line
// "ok ioredis STEP" / "FAIL ioredis STEP: why" per step.
'use strict';
const { exec } = require('child_process');
const run = require('util').promisify(exec);
const Redis = require('ioredis');
const SOCKET = process.env.TC_SOCKET;
const NAME = 'cache:acme:credit:crm.leads.create';
let failures = 0;

function expect(got, wanted) {
  if (JSON.stringify(got) !== JSON.stringify(wanted))
    throw new Error(`expected ${JSON.stringify(wanted)}, got ${JSON.stringify(got)}`);
}

async function main() {
  // The lines of the README's "From your language", Node.js (ioredis).
  const redis = new Redis(SOCKET);
  redis.on('error', () => {});
  const steps = {
    connect: async () => expect(await redis.ping(), 'PONG'),
    get: async () => {
      expect(await redis.get(NAME), '3.5');
      expect(await redis.get('cache:acme:credit:nope'), null);
    },
    can: async () => {
      expect(await redis.call('CAN', 'acme', 'alice', 'crm.leads.create'), 1);
      expect(await redis.call('CAN', 'acme', 'nobody', 'crm.leads.create'), null);
    },
    pipeline: async () => {
      const pipeline = redis.pipeline();
      for (let i = 0; i < 100; i++) pipeline.get(NAME);
      expect(await pipeline.exec(), Array(100).fill([null, '3.5']));
    },
    transaction: async () => {
      const replies = await redis.multi()
        .get(NAME)
        .call('CAN', 'acme', 'alice', 'crm.leads.create')
        .call('CREDIT', 'acme', 'crm.leads.create')
        .exec();
      expect(replies, [[null, '3.5'], [null, 1], [null, '3.5']]);
    },
    'client-name': async () => {
      const named = new Redis(SOCKET, { connectionName: 'ioredis-app' });
      expect(await named.client('GETNAME'), 'ioredis-app');
      named.disconnect();
    },
    pool: async () => {
      const clients = Array.from({ length: 8 }, () => new Redis(SOCKET));
      const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => clients[i % 8].get(NAME)));
      expect(replies, Array(200).fill('3.5'));
      clients.forEach((c) => c.disconnect());
    },
    error: async () => {
      try {
        await redis.call('CAN', 'acme');
      } catch (error) {
        expect(error.message, "ERR wrong number of arguments for 'CAN'");
        return;
      }
      throw new Error('no error');
    },
    reconnect: async () => {
      await run(process.env.TC_RESTART);
      expect(await redis.get(NAME), '3.5');
    },
  };
  for (const [name, step] of Object.entries(steps)) {
    try {
      await step();
      console.log(`ok ioredis ${name}`);
    } catch (error) {
      failures++;
      console.log(`FAIL ioredis ${name}: ${error && error.message}`);
    }
  }
  redis.disconnect();
  process.exit(failures ? 1 : 0);
}

main().catch((error) => {
  console.log(`FAIL ioredis: ${error && error.stack}`);
  process.exit(1);
});
