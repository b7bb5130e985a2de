// taskChanged over the graphql-transport-ws protocol, with the graphql-ws
// client that Apollo and urql use and with Apollo Client's GraphQLWsLink.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ApolloClient, InMemoryCache } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { print } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

import { docs, sources } from '../lib/documents.js';
import { newUserID, postGraphQL, until } from '../lib/http.js';
import { dialects, startServer, terminateBackends } from '../lib/server.js';
import { mint, newSecret } from '../lib/tokens.js';

for (const dialect of dialects()) {
  describe(`subscriptions on ${dialect}`, () => {
    const secret = newSecret();
    let server;
    const clients = [];
    before(async () => {
      server = await startServer({ dialect, env: { AUTH_JWT_SECRET: secret } });
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.dispose()));
      await server?.stop();
    });

    function wsClient(token, on = {}) {
      const client = createClient({
        url: server.url.replace(/^http/, 'ws'),
        webSocketImpl: WebSocket,
        connectionParams: { Authorization: `Bearer ${token}` },
        retryAttempts: 0,
        on,
      });
      clients.push(client);
      return client;
    }

    /** A user with a token, a helper to run mutations as them over HTTP, and a stream of their events. */
    async function subscribedUser(prefix) {
      const token = await mint(secret, newUserID(prefix));
      const events = [];
      const errors = [];
      wsClient(token).subscribe({ query: sources.TaskChanged }, {
        next: (msg) => (msg.errors ? errors.push(msg.errors) : events.push(msg.data.taskChanged)),
        error: (err) => errors.push(err),
        complete: () => {},
      });
      const run = async (doc, variables) => {
        const { status, body } = await postGraphQL(server.url, { query: sources[doc], variables }, { token });
        assert.equal(status, 200, JSON.stringify(body));
        assert.equal(body.errors, undefined, JSON.stringify(body.errors));
        return Object.values(body.data)[0];
      };
      // The subscription is live once a change made after it arrives:
      // create probe tasks until one does, then forget the probes.
      await until(async () => {
        await run('CreateTask', { input: { title: 'probe' } });
        return events.length > 0;
      }, { timeout: 10_000, interval: 100 });
      await new Promise((r) => setTimeout(r, 100));
      const probes = new Set(events.map((e) => e.task.id));
      events.length = 0;
      return { token, events, errors, run, probes };
    }

    test('delivers the user\'s own changes in commit order, and only theirs', async () => {
      const alice = await subscribedUser('alice');
      const bob = await subscribedUser('bob');

      const a = await alice.run('CreateTask', { input: { title: 'Write tests' } });
      const updated = await alice.run('UpdateTask', { id: a.id, input: { description: 'all of them' } });
      const toggled = await alice.run('ToggleTask', { id: a.id });
      const deleted = await alice.run('DeleteTask', { id: a.id });
      const b = await alice.run('CreateTask', { input: { title: 'Done already', completed: true } });
      const ids = await alice.run('DeleteCompletedTasks');
      assert.deepEqual(ids, [b.id]);

      const want = [
        { kind: 'CREATED', task: a },
        { kind: 'UPDATED', task: updated },
        { kind: 'UPDATED', task: toggled },
        { kind: 'DELETED', task: deleted },
        { kind: 'CREATED', task: b },
        { kind: 'DELETED', task: b },
      ];
      await until(() => alice.events.length >= want.length, { timeout: 10_000 });
      const strip = ({ kind, task }) => ({ kind, task: { ...task, __typename: undefined } });
      assert.deepEqual(alice.events.map(strip), want.map(strip),
        'events arrive in commit order, each with the task exactly as the mutation returned it (DELETED: as it was)');
      assert.deepEqual(alice.errors, []);

      // Give a stray event time to arrive before concluding there is none.
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(bob.events, [], 'another user\'s changes never reach bob');
    });

    test('Apollo Client receives events through GraphQLWsLink', async () => {
      const token = await mint(secret, newUserID('apollo-ws'));
      const client = new ApolloClient({ link: new GraphQLWsLink(wsClient(token)), cache: new InMemoryCache() });
      const seen = [];
      const sub = client.subscribe({ query: docs.TaskChanged }).subscribe({ next: (r) => seen.push(r.data.taskChanged) });
      try {
        await until(async () => {
          await postGraphQL(server.url, { query: sources.CreateTask, variables: { input: { title: 'via Apollo' } } }, { token });
          return seen.length > 0;
        }, { timeout: 10_000, interval: 150 });
        assert.equal(seen[0].kind, 'CREATED');
        assert.equal(seen[0].task.title, 'via Apollo');
        assert.equal(seen[0].task.__typename, 'Task');
      } finally {
        sub.unsubscribe();
      }
      assert.ok(print(docs.TaskChanged).includes('taskChanged'));
    });

    test('a bad token closes the socket with 4403 UNAUTHENTICATED, never 1000', async () => {
      let closed;
      const client = wsClient('not-a-token', { closed: (e) => { closed = e; } });
      const failed = new Promise((resolve) => {
        client.subscribe({ query: sources.TaskChanged }, { next: () => {}, error: resolve, complete: () => resolve('complete') });
      });
      await failed;
      await until(() => closed, { timeout: 5000 });
      assert.equal(closed.code, 4403);
      assert.match(closed.reason, /^UNAUTHENTICATED/);
    });
  });
}

// EVENTS_MISSED, provoked deterministically: the test ends the server's
// LISTEN session, as a database restart or a suspending Neon compute does.
// Shown with the client code an app would write around Apollo Client.
describe('EVENTS_MISSED on postgres', { skip: !dialects().includes('postgres') && 'needs TEST_DATABASE_URL' }, () => {
  const secret = newSecret();
  const applicationName = 'e2e_missed_' + Math.random().toString(16).slice(2, 10);
  let server;
  const wsClients = [];
  before(async () => {
    // GraphQLWsLink tells a socket's close event from GraphQL errors by
    // reading the global WebSocket, which Node 20 lacks: without it an
    // error message from the server becomes a ReferenceError. A browser
    // has one; a Node app provides it, as here.
    globalThis.WebSocket ??= WebSocket;
    server = await startServer({ dialect: 'postgres', env: { AUTH_JWT_SECRET: secret }, applicationName });
  });
  after(async () => {
    await Promise.all(wsClients.map((c) => c.dispose()));
    await server?.stop();
  });

  /** The codes of an Apollo Client error, whichever shape it has (CombinedGraphQLErrors in Apollo 4, ApolloError before). */
  const codesOf = (err) => (err?.errors ?? err?.graphQLErrors ?? []).map((e) => e.extensions?.code);

  /**
   * What an app keeps live with taskChanged: its list of tasks, changed by
   * each event; on EVENTS_MISSED the list may be stale, so it subscribes
   * again and refetches the list (after a short backoff, as clients do).
   */
  function liveTaskList(client, fetchList, { backoff = 500 } = {}) {
    const live = { tasks: new Map(), subscriptions: 0, missed: 0, events: 0, other: [] };
    const apply = ({ kind, task }) => {
      live.events++;
      const had = live.tasks.get(task.id);
      if (kind === 'DELETED') live.tasks.delete(task.id);
      else if (!had || had.updatedAt <= task.updatedAt) live.tasks.set(task.id, task);
    };
    const onError = (err) => {
      if (!codesOf(err).includes('EVENTS_MISSED')) {
        live.other.push(err);
        return;
      }
      live.missed++;
      setTimeout(start, backoff);
    };
    async function start() {
      live.subscriptions++;
      live.sub = client.subscribe({ query: docs.TaskChanged }).subscribe({
        next: (result) => (result.error ? onError(result.error) : apply(result.data.taskChanged)),
        error: onError,
      });
      // Subscribed first, then read: a change in between is in the list,
      // or arrives as an event, or both (applying it twice is harmless).
      for (const task of await fetchList()) apply({ kind: 'UPDATED', task });
    }
    live.start = start;
    live.stop = () => live.sub?.unsubscribe();
    return live;
  }

  test('a client that loses its stream gets EVENTS_MISSED, refetches and resubscribes, and sees every change', async () => {
    const token = await mint(secret, newUserID('missed'));
    const ws = createClient({
      url: server.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { Authorization: `Bearer ${token}` },
      retryAttempts: 0,
    });
    wsClients.push(ws);
    const client = new ApolloClient({ link: new GraphQLWsLink(ws), cache: new InMemoryCache() });
    const create = async (title) => {
      const { body } = await postGraphQL(server.url, { query: sources.CreateTask, variables: { input: { title } } }, { token });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      return body.data.createTask;
    };
    const fetchList = async () => {
      const { body } = await postGraphQL(server.url, { query: sources.Tasks, variables: { first: 100 } }, { token });
      assert.equal(body.errors, undefined, JSON.stringify(body.errors));
      return body.data.tasks.edges ? body.data.tasks.edges.map((e) => e.node) : body.data.tasks.nodes;
    };
    const live = liveTaskList(client, fetchList);
    await live.start();
    try {
      // Live once an event arrives.
      await until(async () => {
        await create('probe');
        return live.events > 0;
      }, { timeout: 10_000, interval: 150 });

      // The database drops the server's LISTEN: the subscription ends
      // with EVENTS_MISSED.
      await until(async () => (await terminateBackends(applicationName, 'LISTEN %')) === 1, { timeout: 10_000, interval: 100 });
      await until(() => live.missed === 1, { timeout: 10_000 });
      // A change committed while the client has no stream: no event will
      // ever bring it; the refetch does.
      const whileAway = await create('while away');
      await until(() => live.tasks.has(whileAway.id), { timeout: 10_000 });
      assert.equal(live.subscriptions, 2, 'the client subscribed again');

      // And the new subscription hears what comes next.
      const eventsBefore = live.events;
      let after;
      await until(async () => {
        after = await create('after the resubscribe');
        await new Promise((r) => setTimeout(r, 100));
        return live.events > eventsBefore && live.tasks.has(after.id);
      }, { timeout: 10_000, interval: 100 });

      const titles = new Set([...live.tasks.values()].map((t) => t.title));
      assert.ok(titles.has('while away') && titles.has('after the resubscribe'), [...titles].join(', '));
      assert.deepEqual(live.other, [], 'no error but EVENTS_MISSED');
    } finally {
      live.stop();
    }
  });
});
