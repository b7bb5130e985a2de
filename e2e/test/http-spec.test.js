// The GraphQL-over-HTTP spec's own audit (graphql-http's auditServer)
// against the real server, anonymous as the audit is: CONTRACT §3 says it
// passes with no error and no warning. Notices (what the spec says a
// server MAY do) are printed but do not fail the test.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { auditServer } from 'graphql-http';

import { dialects, startServer } from '../lib/server.js';
import { newSecret } from '../lib/tokens.js';

for (const dialect of dialects()) {
  describe(`GraphQL over HTTP audit on ${dialect}`, () => {
    let server;
    before(async () => {
      server = await startServer({ dialect, env: { AUTH_JWT_SECRET: newSecret() } });
    });
    after(() => server?.stop());

    test('graphql-http auditServer finds no error and no warning', async () => {
      const results = await auditServer({ url: server.url });
      const tally = { ok: 0, notice: 0, warn: 0, error: 0 };
      const failed = [];
      for (const r of results) {
        tally[r.status] += 1;
        if (r.status === 'ok') continue;
        // The response's body is read once, for the report.
        const body = await r.response.text().catch(() => '(body unreadable)');
        const line = `${r.status} ${r.id} ${r.name}: ${r.reason} (${r.response.status} ${body.slice(0, 300)})`;
        if (r.status === 'notice') console.log(line);
        else failed.push(line);
      }
      console.log(`graphql-http audit: ${results.length} audits, ${JSON.stringify(tally)}`);
      assert.deepEqual(failed, [], `audits that failed:\n${failed.join('\n')}`);
    });
  });
}
