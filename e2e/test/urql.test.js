// urql (@urql/core with its document cacheExchange and fetchExchange)
// against the real server. urql sends queries as GET, so this is also the
// proof that GET /graphql serves them with the Authorization header.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Client, cacheExchange, fetchExchange } from '@urql/core';

import { docs } from '../lib/documents.js';
import { newUserID, recordingFetch, until } from '../lib/http.js';
import { dialects, startServer } from '../lib/server.js';
import { mint, newSecret } from '../lib/tokens.js';

for (const dialect of dialects()) {
  describe(`urql on ${dialect}`, () => {
    const secret = newSecret();
    let server;
    before(async () => {
      server = await startServer({ dialect, env: { AUTH_JWT_SECRET: secret } });
    });
    after(() => server?.stop());

    /** A client as a frontend builds it, for a new user (or none, with token null). */
    async function newClient({ token } = {}) {
      if (token === undefined) token = await mint(secret, newUserID('urql'));
      const { fetch, requests } = recordingFetch();
      const client = new Client({
        url: server.url,
        exchanges: [cacheExchange, fetchExchange],
        fetch,
        fetchOptions: () => ({ headers: token ? { authorization: `Bearer ${token}` } : {} }),
      });
      return { client, requests };
    }

    async function create(client, input) {
      const { data, error } = await client.mutation(docs.CreateTask, { input }).toPromise();
      assert.ifError(error);
      return data.createTask;
    }

    test('creates, reads, updates and deletes a task; queries go as GET with the token', async () => {
      const { client, requests } = await newClient();
      const created = await create(client, { title: 'Water the plants', description: '  the ficus  ' });
      assert.equal(created.description, 'the ficus');

      const read = await client.query(docs.Task, { id: created.id }).toPromise();
      assert.ifError(read.error);
      assert.deepEqual(read.data.task, created);

      const updated = await client.mutation(docs.UpdateTask, { id: created.id, input: { completed: true } }).toPromise();
      assert.ifError(updated.error);
      assert.equal(updated.data.updateTask.completed, true);
      assert.equal(updated.data.updateTask.title, 'Water the plants', 'fields left out are unchanged');

      const toggled = await client.mutation(docs.ToggleTask, { id: created.id }).toPromise();
      assert.equal(toggled.data.toggleTask.completed, false);

      const deleted = await client.mutation(docs.DeleteTask, { id: created.id }).toPromise();
      assert.equal(deleted.data.deleteTask.id, created.id);
      const gone = await client.query(docs.Task, { id: created.id }, { requestPolicy: 'network-only' }).toPromise();
      assert.ifError(gone.error);
      assert.equal(gone.data.task, null);

      const queries = requests.filter((r) => r.url.searchParams.has('query'));
      assert.ok(queries.length >= 2, 'queries were sent');
      for (const r of queries) {
        assert.equal(r.method, 'GET');
        assert.match(r.headers.get('authorization'), /^Bearer /);
        assert.equal(r.status, 200);
      }
      const mutations = requests.filter((r) => r.body?.query?.trimStart().startsWith('mutation'));
      assert.equal(mutations.length, 4);
      assert.ok(mutations.every((r) => r.method === 'POST'));
    });

    test('serves repeated queries from the cache, and refetches what a mutation invalidates', async () => {
      const { client, requests } = await newClient();
      const task = await create(client, { title: 'cached' });
      requests.length = 0;

      const results = [];
      const sub = client.query(docs.TaskTitles, {}).subscribe((r) => results.push(r));
      try {
        await until(() => results.some((r) => r.data?.tasks?.nodes?.length === 1));
        const again = await client.query(docs.TaskTitles, {}).toPromise();
        assert.equal(again.data.tasks.totalCount, 1);
        assert.equal(requests.length, 1, 'the second query is a cache hit');

        await client.mutation(docs.ToggleTask, { id: task.id }).toPromise();
        // The mutation returned a Task, so the document cache drops every
        // result holding a Task and re-runs the active queries.
        const refreshed = await until(() => results.find((r) => r.data?.tasks?.nodes?.[0]?.completed === true));
        assert.equal(refreshed.data.tasks.nodes[0].id, task.id);
        assert.deepEqual(requests.map((r) => r.method), ['GET', 'POST', 'GET'], 'query, mutation, refetch');
      } finally {
        sub.unsubscribe();
      }
    });

    test('pages through tasks with after cursors', async () => {
      const { client } = await newClient();
      const ids = [];
      for (let i = 1; i <= 5; i++) ids.push((await create(client, { title: `page ${i}` })).id);

      const seen = [];
      let after = null;
      for (let pages = 1; ; pages++) {
        assert.ok(pages <= 3, 'five tasks in pages of two end with the third page');
        const { data, error } = await client.query(docs.Tasks, { first: 2, after }).toPromise();
        assert.ifError(error);
        seen.push(...data.tasks.edges.map((e) => e.node.id));
        assert.equal(data.tasks.totalCount, 5);
        if (!data.tasks.pageInfo.hasNextPage) break;
        after = data.tasks.pageInfo.endCursor;
      }
      assert.deepEqual(seen, ids.toReversed(), 'every task once, newest first');

      const byTitle = await client.query(docs.Tasks, {
        first: 10,
        filter: { search: 'PAGE 3' },
        orderBy: { field: 'TITLE', direction: 'ASC' },
      }).toPromise();
      assert.deepEqual(byTitle.data.tasks.edges.map((e) => e.node.title), ['page 3']);
    });

    test('surfaces errors with their extensions.code', async () => {
      const { client } = await newClient();

      const empty = await client.mutation(docs.CreateTask, { input: { title: '' } }).toPromise();
      assert.equal(empty.error.graphQLErrors[0].extensions.code, 'BAD_USER_INPUT');
      assert.equal(empty.error.graphQLErrors[0].extensions.field, 'title');

      const badCursor = await client.query(docs.Tasks, { first: 2, after: 'not a cursor' }).toPromise();
      assert.equal(badCursor.error.graphQLErrors[0].extensions.code, 'BAD_USER_INPUT');
      assert.equal(badCursor.error.graphQLErrors[0].extensions.field, 'after');

      const tooMany = await client.query(docs.Tasks, { first: 101 }).toPromise();
      assert.equal(tooMany.error.graphQLErrors[0].extensions.code, 'BAD_USER_INPUT');
      assert.equal(tooMany.error.graphQLErrors[0].extensions.field, 'first');

      const missing = await client.mutation(docs.DeleteTask, { id: '999999999' }).toPromise();
      assert.equal(missing.error.graphQLErrors[0].extensions.code, 'NOT_FOUND');

      const { client: anonymous } = await newClient({ token: null });
      const anon = await anonymous.query(docs.TaskStats, {}).toPromise();
      assert.equal(anon.error.graphQLErrors[0].extensions.code, 'UNAUTHENTICATED');

      const { client: forged, requests } = await newClient({ token: await mint(newSecret(), 'mallory') });
      const refused = await forged.query(docs.TaskStats, {}).toPromise();
      assert.equal(requests.at(-1).method, 'GET');
      assert.equal(requests.at(-1).status, 401);
      assert.equal(refused.error.graphQLErrors[0]?.extensions.code, 'UNAUTHENTICATED', String(refused.error));
    });
  });
}
