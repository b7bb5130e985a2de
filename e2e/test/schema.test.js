// Schema tooling: code generators and IDEs read the schema by introspection
// without a token, and what they read is the schema the `schema` subcommand
// prints. Every document these tests send is validated against it, so a
// breaking change to the schema fails here, as it would break the clients.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import {
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  lexicographicSortSchema,
  parse,
  printSchema,
  validate,
} from 'graphql';

import { sources } from '../lib/documents.js';
import { postGraphQL } from '../lib/http.js';
import { dialects, serverBinary, startServer } from '../lib/server.js';
import { newSecret } from '../lib/tokens.js';

const run = promisify(execFile);

/** The schema as SDL in a canonical form: sorted, as graphql-js prints it. */
const canonical = (schema) => printSchema(lexicographicSortSchema(schema));

for (const dialect of dialects()) {
  describe(`schema tooling on ${dialect}`, () => {
    let server;
    let sdl;
    before(async () => {
      server = await startServer({ dialect, env: { AUTH_JWT_SECRET: newSecret() } });
      ({ stdout: sdl } = await run(await serverBinary(), ['schema']));
    });
    after(() => server?.stop());

    test('introspection without a token matches the SDL of `server schema`', async () => {
      const res = await postGraphQL(server.url, { query: getIntrospectionQuery({ descriptions: true }) });
      assert.equal(res.status, 200, JSON.stringify(res.body.errors));
      assert.equal(res.body.errors, undefined);

      // gqlgen declares @defer among its built-in directives, like @skip and
      // @include, so its SDL printer leaves it out as it leaves those out;
      // graphql-js 16 has no @defer built in, so it is set aside here.
      const { __schema } = res.body.data;
      const directives = __schema.directives.filter((d) => d.name !== 'defer');
      const introspected = buildClientSchema({ __schema: { ...__schema, directives } });
      const printed = buildSchema(sdl);
      assert.equal(canonical(introspected), canonical(printed));

      // The contract's names, as generated clients code against them.
      const query = introspected.getQueryType().getFields();
      assert.deepEqual(Object.keys(query).sort(), ['me', 'task', 'taskStats', 'tasks']);
      assert.equal(String(query.tasks.type), 'TaskConnection!');
      assert.equal(String(introspected.getMutationType().getFields().deleteCompletedTasks.type), '[ID!]!');
    });

    test('every document the end-to-end tests send is valid against the schema', () => {
      const schema = buildSchema(sdl);
      const all = { ...sources, Introspection: getIntrospectionQuery({ descriptions: true }) };
      for (const [name, source] of Object.entries(all)) {
        const errors = validate(schema, parse(source));
        assert.deepEqual(errors.map((e) => e.message), [], `${name} does not validate`);
      }
    });

    test('a document that no longer fits the schema is caught', () => {
      // What the check above guards against: renaming a field the clients use.
      const schema = buildSchema(sdl.replace(/\btotalCount\b/g, 'count'));
      const errors = validate(schema, parse(sources.Tasks));
      assert.match(errors[0]?.message ?? '', /Cannot query field "totalCount"/);
    });
  });
}
