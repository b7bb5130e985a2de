// Apollo automatic persisted queries, with @apollo/client's
// PersistedQueryLink: an unknown hash is PERSISTED_QUERY_NOT_FOUND, the link
// retries with the document, and from then on the hash alone is enough,
// over GET and over POST. A hash that does not match its document is
// refused.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { ApolloClient, HttpLink, InMemoryCache } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { print } from 'graphql';

import { docs } from '../lib/documents.js';
import { newUserID, postGraphQL, recordingFetch } from '../lib/http.js';
import { dialects, startServer } from '../lib/server.js';
import { mint, newSecret } from '../lib/tokens.js';

const sha256 = (text) => createHash('sha256').update(text).digest('hex');

for (const dialect of dialects()) {
  describe(`Apollo persisted queries on ${dialect}`, () => {
    const secret = newSecret();
    let server;
    let token;
    before(async () => {
      server = await startServer({ dialect, env: { AUTH_JWT_SECRET: secret } });
      token = await mint(secret, newUserID('apq'));
      const created = await postGraphQL(server.url, {
        query: print(docs.CreateTask),
        variables: { input: { title: 'persisted' } },
      }, { token });
      assert.equal(created.status, 200, JSON.stringify(created.body));
    });
    after(() => server?.stop());

    /** A new client (so a new cache) whose hashed queries go as GET or POST. */
    function newClient({ useGET }) {
      const { fetch, requests } = recordingFetch();
      const link = new PersistedQueryLink({ sha256, useGETForHashedQueries: useGET })
        .concat(new HttpLink({ uri: server.url, fetch, headers: { authorization: `Bearer ${token}` } }));
      return { client: new ApolloClient({ link, cache: new InMemoryCache() }), requests };
    }

    /** What each request carried (method, document, hash) and its status. */
    const summary = (requests) => requests.map((r) => {
      const params = r.method === 'GET'
        ? { query: r.url.searchParams.get('query'), extensions: JSON.parse(r.url.searchParams.get('extensions') ?? 'null') }
        : r.body;
      return {
        method: r.method,
        document: Boolean(params.query),
        hash: params.extensions?.persistedQuery?.sha256Hash,
        status: r.status,
        code: r.response?.errors?.[0]?.extensions?.code,
      };
    });

    for (const { transport, useGET, query } of [
      { transport: 'GET', useGET: true, query: docs.TaskTitles },
      { transport: 'POST', useGET: false, query: docs.TaskStats },
    ]) {
      test(`misses, registers, then hits by hash alone over ${transport}`, async () => {
        const first = newClient({ useGET });
        const { data } = await first.client.query({ query });
        assert.ok(data, 'the retry with the document answers');
        const [miss] = summary(first.requests);
        assert.match(miss.hash ?? '', /^[0-9a-f]{64}$/);
        // Apollo Client 4 accepts application/graphql-response+json, under
        // which a response without data is 400; the link retries all the same.
        assert.deepEqual(summary(first.requests), [
          { method: transport, document: false, hash: miss.hash, status: 400, code: 'PERSISTED_QUERY_NOT_FOUND' },
          { method: 'POST', document: true, hash: miss.hash, status: 200, code: undefined },
        ], 'the hash alone, then the document with its hash');
        assert.equal(first.requests[0].headers.get('authorization'), `Bearer ${token}`);

        const second = newClient({ useGET });
        const again = await second.client.query({ query });
        assert.deepEqual(again.data, data);
        assert.deepEqual(summary(second.requests), [
          { method: transport, document: false, hash: miss.hash, status: 200, code: undefined },
        ], 'the hash alone is enough once the server has the document');
      });
    }

    test('answers an unknown hash with PERSISTED_QUERY_NOT_FOUND', async () => {
      const extensions = { persistedQuery: { version: 1, sha256Hash: sha256(`never sent ${Math.random()}`) } };
      const res = await postGraphQL(server.url, { extensions }, { token, headers: { accept: 'application/json' } });
      assert.equal(res.status, 200, 'application/json: 200, so that every Apollo version retries');
      assert.equal(res.body.errors[0].extensions.code, 'PERSISTED_QUERY_NOT_FOUND');

      const viaGET = await fetch(`${server.url}?extensions=${encodeURIComponent(JSON.stringify(extensions))}`, {
        headers: { authorization: `Bearer ${token}`, accept: 'application/graphql-response+json' },
      });
      assert.equal(viaGET.status, 400, 'application/graphql-response+json: a response without data is never 2xx');
      assert.equal((await viaGET.json()).errors[0].extensions.code, 'PERSISTED_QUERY_NOT_FOUND');
    });

    test('refuses a hash that does not match its document', async () => {
      const query = print(docs.Me);
      const wrong = sha256(query + ' ');
      const res = await postGraphQL(server.url, {
        query,
        extensions: { persistedQuery: { version: 1, sha256Hash: wrong } },
      }, { token });
      assert.equal(res.body.data, undefined, 'it does not run');
      assert.match(res.body.errors[0].message, /hash/i);

      // Nor was the document registered under the wrong hash.
      const hit = await postGraphQL(server.url, {
        extensions: { persistedQuery: { version: 1, sha256Hash: wrong } },
      }, { token });
      assert.equal(hit.body.errors[0].extensions.code, 'PERSISTED_QUERY_NOT_FOUND');
    });
  });
}
