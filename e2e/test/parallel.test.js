// Parallel writes and reads from many clients at once, over HTTP (Apollo
// Client) and over websockets (graphql-ws), with a subscriber per user:
// what the other suites, which mostly run one request at a time, do not
// do. Through a transaction-mode pooler (E2E_POOLER_URL, .ci/run's second
// run) this is when server connections are shared between clients and
// prepared statements collide (issue 13); nothing may fail.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ApolloClient, HttpLink, InMemoryCache } from '@apollo/client';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

import { docs, sources } from '../lib/documents.js';
import { newUserID, until } from '../lib/http.js';
import { dialects, startServer } from '../lib/server.js';
import { mint, newSecret } from '../lib/tokens.js';

const users = 6;
const createsPerUser = 12; // half over HTTP, half over the websocket

for (const dialect of dialects()) {
  describe(`parallel clients on ${dialect}`, () => {
    const secret = newSecret();
    let server;
    const sockets = [];
    before(async () => {
      server = await startServer({ dialect, env: { AUTH_JWT_SECRET: secret } });
    });
    after(async () => {
      await Promise.all(sockets.map((c) => c.dispose()));
      await server?.stop();
    });

    /** Runs one operation over the websocket client ws and resolves with its result. */
    function overSocket(ws, query, variables) {
      return new Promise((resolve, reject) => {
        let result;
        ws.subscribe({ query, variables }, {
          next: (r) => { result = r; },
          error: reject,
          complete: () => resolve(result),
        });
      });
    }

    test('creates and reads in parallel all succeed, and every change reaches its subscriber', async () => {
      const errors = [];
      const note = (where, r) => {
        for (const e of r?.errors ?? []) errors.push(`${where}: ${e.extensions?.code} ${e.message}`);
      };
      const work = Array.from({ length: users }, async (_, u) => {
        const token = await mint(secret, newUserID('parallel'));
        const apollo = new ApolloClient({
          link: new HttpLink({ uri: server.url, headers: { authorization: `Bearer ${token}` } }),
          cache: new InMemoryCache(),
          defaultOptions: { query: { fetchPolicy: 'network-only', errorPolicy: 'all' }, mutate: { errorPolicy: 'all' } },
        });
        const ws = createClient({
          url: server.url.replace(/^http/, 'ws'),
          webSocketImpl: WebSocket,
          connectionParams: { Authorization: `Bearer ${token}` },
          retryAttempts: 0,
        });
        sockets.push(ws);
        const heard = [];
        await new Promise((resolve, reject) => {
          ws.subscribe({ query: sources.TaskChanged }, {
            next: (r) => { note('taskChanged', r); if (r.data) heard.push(r.data.taskChanged); },
            error: reject,
            complete: () => {},
          });
          ws.on('connected', resolve);
        });
        // The subscription may start listening a little after the
        // connection is acknowledged: a first create, once heard, proves
        // it is in place before the parallel work begins.
        let warmUpCreates = 0;
        await until(async () => {
          warmUpCreates += 1;
          note('warm-up createTask', await apollo.mutate({ mutation: docs.CreateTask, variables: { input: { title: 'warm-up' } } }));
          return heard.length > 0;
        }, { timeout: 10_000, interval: 200 });
        const warmUps = heard.length;
        const ops = Array.from({ length: createsPerUser }, async (_, i) => {
          const input = { title: `task ${i} of user ${u}` };
          if (i % 2 === 0) {
            const r = await apollo.mutate({ mutation: docs.CreateTask, variables: { input } });
            note('createTask over HTTP', r);
          } else {
            note('createTask over the websocket', await overSocket(ws, sources.CreateTask, { input }));
          }
          note('tasks', await apollo.query({ query: docs.Tasks, variables: { first: 5 } }));
          note('taskStats over the websocket', await overSocket(ws, sources.TaskStats, {}));
        });
        await Promise.all(ops);
        const final = await apollo.query({ query: docs.TaskStats });
        note('taskStats', final);
        return { heard, total: final.data?.taskStats.total - warmUpCreates, warmUps };
      });
      const results = await Promise.all(work);
      const internal = errors.filter((e) => e.includes('INTERNAL_SERVER_ERROR')).length;
      assert.deepEqual(errors, [], `${errors.length} operations failed, ${internal} with INTERNAL_SERVER_ERROR`);
      for (const [u, { heard: events, total, warmUps }] of results.entries()) {
        assert.equal(total, createsPerUser, `user ${u}'s tasks`);
        const want = warmUps + createsPerUser;
        await until(() => events.filter((c) => c.kind === 'CREATED').length >= want, { timeout: 10_000 })
          .catch(() => assert.fail(`user ${u} heard ${events.length - warmUps} of ${createsPerUser} creates`));
      }
      assert.deepEqual(errors, [], 'no event was an error');
    });
  });
}
