// A real Better Auth (better-auth from npm, its jwt plugin) issues the
// tokens, and the server, configured with nothing but BETTER_AUTH_URL,
// verifies them through Better Auth's JWKS.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { print } from 'graphql';

import { decodeJWT, startBetterAuth } from '../lib/betterauth.js';
import { docs } from '../lib/documents.js';
import { newUserID, postGraphQL, until } from '../lib/http.js';
import { dialects, startServer } from '../lib/server.js';

/** Runs doc on server as the holder of token. */
const gql = (server, token, doc, variables) => postGraphQL(server.url, { query: print(doc), variables }, { token });

const email = (who) => `${newUserID(who)}@example.com`;

for (const dialect of dialects()) {
  describe(`Better Auth tokens on ${dialect}`, () => {
    let betterAuth;
    let server;
    before(async () => {
      betterAuth = await startBetterAuth();
      server = await startServer({ dialect, env: { BETTER_AUTH_URL: betterAuth.origin } });
    });
    after(async () => {
      await server?.stop();
      await betterAuth?.stop();
    });

    test('an EdDSA token from /api/auth/token verifies through the JWKS', async () => {
      const alice = await betterAuth.signUp({ email: email('alice'), name: 'Alice' });
      const token = await betterAuth.token(alice.cookie);

      const { header, payload } = decodeJWT(token);
      assert.equal(header.alg, 'EdDSA');
      assert.ok(header.kid, 'Better Auth names its key');
      assert.equal(header.typ, undefined, 'Better Auth sets no typ');
      assert.equal(payload.nbf, undefined, 'nor nbf');
      assert.equal(payload.iss, betterAuth.origin);
      assert.equal(payload.aud, betterAuth.origin);
      assert.equal(payload.sub, alice.id);

      const me = await gql(server, token, docs.Me);
      assert.equal(me.status, 200, JSON.stringify(me.body));
      assert.deepEqual(me.body.data.me, { id: alice.id, email: alice.email, name: 'Alice' });

      const created = await gql(server, token, docs.CreateTask, { input: { title: "Alice's task" } });
      assert.equal(created.body.data.createTask.title, "Alice's task");
      const list = await gql(server, token, docs.TaskTitles);
      assert.deepEqual(list.body.data.tasks.nodes.map((t) => t.title), ["Alice's task"]);
    });

    test("a second user sees none of the first user's tasks", async () => {
      const alice = await betterAuth.signUp({ email: email('alice'), name: 'Alice' });
      const bob = await betterAuth.signUp({ email: email('bob'), name: 'Bob' });
      const aliceToken = await betterAuth.token(alice.cookie);
      const bobToken = await betterAuth.token(bob.cookie);

      const task = (await gql(server, aliceToken, docs.CreateTask, { input: { title: 'private' } })).body.data.createTask;

      const bobsList = await gql(server, bobToken, docs.TaskTitles);
      assert.deepEqual(bobsList.body.data.tasks, { nodes: [], totalCount: 0 });
      const bobsRead = await gql(server, bobToken, docs.Task, { id: task.id });
      assert.equal(bobsRead.body.data.task, null);
      const bobsToggle = await gql(server, bobToken, docs.ToggleTask, { id: task.id });
      assert.equal(bobsToggle.body.errors[0].extensions.code, 'NOT_FOUND');
      const bobsDelete = await gql(server, bobToken, docs.DeleteTask, { id: task.id });
      assert.equal(bobsDelete.body.errors[0].extensions.code, 'NOT_FOUND');

      const alicesRead = await gql(server, aliceToken, docs.Task, { id: task.id });
      assert.equal(alicesRead.body.data.task.completed, false, "Bob's attempts changed nothing");
    });

    test('a token from a different Better Auth instance is refused', async () => {
      // The impostor claims this server's issuer and audience, so only its
      // key (a kid the real JWKS does not have) gives it away.
      const impostor = await startBetterAuth({ jwtOptions: { issuer: betterAuth.origin, audience: betterAuth.origin } });
      try {
        const mallory = await impostor.signUp({ email: email('mallory'), name: 'Mallory' });
        const token = await impostor.token(mallory.cookie);
        assert.equal(decodeJWT(token).payload.iss, betterAuth.origin);

        const res = await gql(server, token, docs.Me);
        assert.equal(res.status, 401);
        assert.equal(res.body.errors[0].extensions.code, 'UNAUTHENTICATED');
        assert.equal(res.body.data, undefined);
      } finally {
        await impostor.stop();
      }
    });
  });

  describe(`Better Auth key rotation on ${dialect}`, () => {
    const rotationInterval = 1; // seconds
    let betterAuth;
    let server;
    before(async () => {
      betterAuth = await startBetterAuth({ jwks: { rotationInterval } });
      server = await startServer({ dialect, env: { BETTER_AUTH_URL: betterAuth.origin } });
    });
    after(async () => {
      await server?.stop();
      await betterAuth?.stop();
    });

    test('tokens signed with a rotated key verify without a server restart', async () => {
      const carol = await betterAuth.signUp({ email: email('carol'), name: 'Carol' });
      const before = await betterAuth.token(carol.cookie);
      const oldKid = decodeJWT(before).header.kid;
      const first = await gql(server, before, docs.Me);
      assert.equal(first.status, 200, 'the server has fetched the JWKS with the first key');

      // Better Auth mints a new key for the first token it signs after the
      // current key's rotationInterval has passed.
      const after = await until(async () => {
        const token = await betterAuth.token(carol.cookie);
        return decodeJWT(token).header.kid !== oldKid && token;
      }, { interval: 100 });
      const { keys } = await betterAuth.jwks();
      assert.equal(keys.length, 2, 'the old key stays published for its grace period');

      const rotated = await gql(server, after, docs.Me);
      assert.equal(rotated.status, 200, `a token with the new kid verifies: ${JSON.stringify(rotated.body)}`);
      assert.equal(rotated.body.data.me.id, carol.id);

      const old = await gql(server, before, docs.TaskStats);
      assert.equal(old.status, 200, 'a token signed with the previous key still verifies');
    });
  });
}
