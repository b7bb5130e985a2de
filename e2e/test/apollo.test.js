// Apollo Client 4 (core, InMemoryCache, HttpLink) against the real server:
// what a React frontend's data layer does, without React.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ApolloClient, CombinedGraphQLErrors, HttpLink, InMemoryCache } from '@apollo/client';
import { Defer20220824Handler } from '@apollo/client/incremental';
import { relayStylePagination } from '@apollo/client/utilities';
import { parse } from 'graphql';

import { docs } from '../lib/documents.js';
import { newUserID, recordingFetch, until } from '../lib/http.js';
import { dialects, startServer } from '../lib/server.js';
import { mint, newSecret } from '../lib/tokens.js';

for (const dialect of dialects()) {
  describe(`Apollo Client on ${dialect}`, () => {
    const secret = newSecret();
    let server;
    before(async () => {
      server = await startServer({ dialect, env: { AUTH_JWT_SECRET: secret } });
    });
    after(() => server?.stop());

    /**
     * A client as a frontend builds it, for a new user (or none, with
     * token null), whose requests are recorded.
     */
    async function newClient({ token } = {}) {
      if (token === undefined) token = await mint(secret, newUserID('apollo'));
      const { fetch, requests } = recordingFetch();
      const client = new ApolloClient({
        link: new HttpLink({
          uri: server.url,
          fetch,
          headers: token ? { authorization: `Bearer ${token}` } : {},
        }),
        cache: new InMemoryCache({
          typePolicies: {
            Query: { fields: { tasks: relayStylePagination(['filter', 'orderBy']) } },
          },
        }),
      });
      return { client, requests, token };
    }

    async function create(client, input) {
      const { data } = await client.mutate({ mutation: docs.CreateTask, variables: { input } });
      return data.createTask;
    }

    test('creates, reads, updates and deletes a task', async () => {
      const { client } = await newClient();
      const created = await create(client, { title: '  Buy milk  ', description: '2 litres' });
      assert.equal(created.__typename, 'Task');
      assert.match(created.id, /^[1-9][0-9]*$/);
      assert.equal(created.title, 'Buy milk', 'titles are stored trimmed');
      assert.equal(created.completed, false);
      assert.match(created.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

      const read = await client.query({ query: docs.Task, variables: { id: created.id }, fetchPolicy: 'network-only' });
      assert.deepEqual(read.data.task, created, 'a query answers exactly what the mutation returned');

      const { data: updated } = await client.mutate({
        mutation: docs.UpdateTask,
        variables: { id: created.id, input: { title: 'Buy oat milk', description: null, completed: true } },
      });
      assert.equal(updated.updateTask.title, 'Buy oat milk');
      assert.equal(updated.updateTask.description, null);
      assert.equal(updated.updateTask.completed, true);
      assert.equal(updated.updateTask.createdAt, created.createdAt);

      const { data: deleted } = await client.mutate({ mutation: docs.DeleteTask, variables: { id: created.id } });
      assert.equal(deleted.deleteTask.title, 'Buy oat milk', 'deleteTask returns the task as it was');

      const gone = await client.query({ query: docs.Task, variables: { id: created.id }, fetchPolicy: 'network-only' });
      assert.equal(gone.data.task, null);
    });

    test('updates cached queries from mutation results without a refetch', async () => {
      const { client, requests } = await newClient();
      const a = await create(client, { title: 'first' });
      const b = await create(client, { title: 'second' });

      const seen = [];
      const watched = client.watchQuery({ query: docs.Tasks, variables: { first: 10 } });
      const sub = watched.subscribe((result) => seen.push(result));
      try {
        await until(() => seen.some((r) => r.data?.tasks?.edges?.length === 2));
        requests.length = 0;

        await client.mutate({ mutation: docs.ToggleTask, variables: { id: a.id } });
        await client.mutate({ mutation: docs.UpdateTask, variables: { id: b.id, input: { title: 'second, renamed' } } });

        const latest = await until(() => {
          const nodes = seen.at(-1)?.data?.tasks?.edges?.map((e) => e.node) ?? [];
          const done = nodes.find((n) => n.id === a.id)?.completed === true;
          const renamed = nodes.find((n) => n.id === b.id)?.title === 'second, renamed';
          return done && renamed && nodes;
        });
        assert.deepEqual(latest.map((n) => n.id), [b.id, a.id], 'newest first');
        assert.deepEqual(requests.map((r) => r.body?.operationName), ['ToggleTask', 'UpdateTask'],
          'the watched query is updated from the normalized cache, never refetched');
      } finally {
        sub.unsubscribe();
      }
    });

    test('evicts a deleted task from the cache', async () => {
      const { client, requests } = await newClient();
      const keep = await create(client, { title: 'keep' });
      const drop = await create(client, { title: 'drop' });
      await client.query({ query: docs.Tasks, variables: { first: 10 } });
      const id = client.cache.identify({ __typename: 'Task', id: drop.id });
      assert.ok(client.cache.extract()[id], `${id} is cached before the delete`);
      requests.length = 0;

      await client.mutate({
        mutation: docs.DeleteTask,
        variables: { id: drop.id },
        update(cache, { data }) {
          cache.evict({ id: cache.identify(data.deleteTask) });
          cache.gc();
        },
      });

      assert.equal(client.cache.extract()[id], undefined, `${id} is gone from the cache`);
      const cached = client.readQuery({ query: docs.Tasks, variables: { first: 10 } });
      assert.deepEqual(cached.tasks.edges.map((e) => e.node.id), [keep.id], 'the list no longer shows it');
      assert.equal(requests.length, 1, 'only the mutation went to the server');

      const server = await client.query({ query: docs.Task, variables: { id: drop.id }, fetchPolicy: 'network-only' });
      assert.equal(server.data.task, null, 'and the server no longer has it');
    });

    test('pages through tasks with a relayStylePagination field policy', async () => {
      const { client, requests } = await newClient();
      const ids = [];
      for (let i = 1; i <= 5; i++) ids.push((await create(client, { title: `task ${i}` })).id);
      const newestFirst = ids.toReversed();

      const first = await client.query({ query: docs.Tasks, variables: { first: 2 } });
      assert.deepEqual(first.data.tasks.edges.map((e) => e.node.id), newestFirst.slice(0, 2));
      assert.equal(first.data.tasks.totalCount, 5);
      assert.equal(first.data.tasks.pageInfo.hasNextPage, true);

      const watched = client.watchQuery({ query: docs.Tasks, variables: { first: 2 } });
      const sub = watched.subscribe(() => {});
      try {
        let pageInfo = first.data.tasks.pageInfo;
        for (let pages = 1; pageInfo.hasNextPage; pages++) {
          assert.ok(pages < 3, 'five tasks in pages of two end after the third page');
          const more = await watched.fetchMore({ variables: { after: pageInfo.endCursor } });
          pageInfo = more.data.tasks.pageInfo;
        }
        const merged = client.readQuery({ query: docs.Tasks, variables: { first: 2 } });
        assert.deepEqual(merged.tasks.edges.map((e) => e.node.id), newestFirst,
          'the field policy merges the pages into one list, in order, without duplicates');
        assert.equal(merged.tasks.pageInfo.hasNextPage, false);
        assert.equal(requests.filter((r) => r.body?.operationName === 'Tasks').length, 3, 'three pages of 2, 2 and 1');
      } finally {
        sub.unsubscribe();
      }
    });

    test('@defer arrives in two parts over multipart/mixed', async () => {
      const { fetch, requests } = recordingFetch();
      const token = await mint(secret, newUserID('apollo'), { email: 'defer@example.com' });
      const client = new ApolloClient({
        link: new HttpLink({ uri: server.url, fetch, headers: { authorization: `Bearer ${token}` } }),
        cache: new InMemoryCache(),
        incrementalHandler: new Defer20220824Handler(),
      });
      // Not in lib/documents.js: graphql-js 16, which validates those,
      // has no @defer.
      const query = parse('query Deferred { me { id ... @defer { email } } }');
      const seen = [];
      await new Promise((resolve, reject) => {
        const sub = client.watchQuery({ query, fetchPolicy: 'network-only' }).subscribe({
          next(result) {
            if (result.error) return reject(result.error);
            if (result.data) seen.push(result.data.me);
            // The initial payload already reads as complete (gqlgen writes
            // the deferred fields as null in it): wait for the stream's end.
            if (!result.loading) {
              sub.unsubscribe();
              resolve();
            }
          },
          error: reject,
        });
      });
      assert.equal(requests.length, 1, 'one request');
      assert.match(requests[0].headers.get('accept'), /multipart\/mixed/, 'Apollo asks for multipart/mixed');
      assert.equal(seen.at(-1).email, 'defer@example.com', 'the deferred field arrives');
      assert.ok(seen.length >= 2, `the initial payload comes first: ${JSON.stringify(seen)}`);
    });

    test('surfaces errors with their extensions.code', async () => {
      const { client, requests } = await newClient();
      const { client: other } = await newClient();
      const othersTask = await create(other, { title: 'not yours' });

      await assertGraphQLError(
        client.mutate({ mutation: docs.CreateTask, variables: { input: { title: '   ' } } }),
        { code: 'BAD_USER_INPUT', field: 'title' });
      await assertGraphQLError(
        client.query({ query: docs.Task, variables: { id: 'abc' } }),
        { code: 'BAD_USER_INPUT', field: 'id' });
      await assertGraphQLError(
        client.mutate({ mutation: docs.ToggleTask, variables: { id: othersTask.id } }),
        { code: 'NOT_FOUND' });
      const ownMissing = await client.query({ query: docs.Task, variables: { id: othersTask.id } });
      assert.equal(ownMissing.data.task, null, "another user's task reads as missing");

      // Not in lib/documents.js: it must not validate.
      await assertGraphQLError(
        client.query({ query: parse('query Invalid { tasks { nope } }') }),
        { code: 'GRAPHQL_VALIDATION_FAILED' });

      const { client: anonymous } = await newClient({ token: null });
      await assertGraphQLError(anonymous.query({ query: docs.Me }), { code: 'UNAUTHENTICATED' });

      const { client: forged, requests: forgedRequests } = await newClient({ token: await mint(newSecret(), 'mallory') });
      await assertGraphQLError(forged.query({ query: docs.Me }), { code: 'UNAUTHENTICATED' });
      assert.equal(forgedRequests.at(-1).status, 401, 'a token that fails verification is HTTP 401');

      assert.ok(requests.every((r) => r.headers.get('authorization')?.startsWith('Bearer ')));
    });
  });
}

/** Asserts that promise rejects with GraphQL errors, the first of which has code (and field). */
async function assertGraphQLError(promise, { code, field }) {
  await assert.rejects(promise, (err) => {
    assert.ok(CombinedGraphQLErrors.is(err), `want CombinedGraphQLErrors, got ${err}`);
    assert.equal(err.errors[0].extensions?.code, code, JSON.stringify(err.errors));
    if (field) assert.equal(err.errors[0].extensions?.field, field);
    return true;
  });
}
