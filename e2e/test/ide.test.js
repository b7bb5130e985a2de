// The IDE at / in a real browser (Debian's headless Chromium, driven by
// playwright-core): it loads with no internet access, a person types a
// query and runs it with the development token the server put in the
// headers editor, and sees their tasks. Nothing on the page may request
// another host.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { print } from 'graphql';
import { chromium } from 'playwright-core';

import { docs, sources } from '../lib/documents.js';
import { postGraphQL, until } from '../lib/http.js';
import { dialects, startServer } from '../lib/server.js';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const artifacts = join(dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');

for (const dialect of dialects()) {
  describe(`GraphiQL in Chromium on ${dialect}`, () => {
    let server;
    let profile;
    let context;
    before(async () => {
      // No token verification configured: the development server makes a
      // secret and puts a dev-user token in the IDE's headers.
      server = await startServer({ dialect });
      profile = await mkdtemp(join(tmpdir(), 'taskql-e2e-chromium-'));
      context = await chromium.launchPersistentContext(profile, {
        executablePath: chromiumPath,
        headless: true,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--disable-quic',
          '--no-first-run',
          // As on a machine without internet: no name but the loopback resolves.
          '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
        ],
        viewport: { width: 1400, height: 900 },
      });
    });
    after(async () => {
      await context?.close();
      if (profile) await rm(profile, { recursive: true, force: true });
      await server?.stop();
    });

    test('loads offline, runs a typed query with the pre-filled token, and shows the tasks', async (t) => {
      const devToken = /Authorization: Bearer (\S+)/.exec(server.log())?.[1];
      assert.ok(devToken, 'the development server prints the token it gives the IDE');
      const titles = [`Read the GraphiQL docs (${dialect})`, `Ship the offline IDE (${dialect})`];
      for (const title of titles) {
        const res = await postGraphQL(server.url, { query: print(docs.CreateTask), variables: { input: { title } } }, { token: devToken });
        assert.equal(res.status, 200, JSON.stringify(res.body));
      }

      const requests = [];
      context.on('request', (r) => requests.push(r));
      const page = await context.newPage();
      const problems = [];
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
      page.on('console', (msg) => {
        // Chromium asks for /favicon.ico, which the server does not have.
        if (msg.type() === 'error' && !msg.location().url.endsWith('/favicon.ico')) {
          problems.push(`console error: ${msg.text()} (${msg.location().url})`);
        }
      });

      await page.goto(server.origin + '/', { waitUntil: 'load' });
      const editor = page.locator('.graphiql-query-editor .CodeMirror');
      await editor.waitFor({ state: 'visible', timeout: 20_000 });
      await page.locator('.graphiql-execute-button').waitFor({ state: 'visible' });

      // Type the query as a person would: click into the editor, select
      // everything, type over it. CodeMirror closes brackets as they are
      // typed, so the closing ones are skipped over rather than doubled.
      await editor.click();
      await page.keyboard.press('Control+A');
      await page.keyboard.press('Delete');
      await page.keyboard.type(sources.IDEQuery);
      const typed = await page.evaluate(() => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue());
      assert.equal(typed, sources.IDEQuery, 'the editor holds exactly what was typed');
      // GraphiQL takes in the editor's text after a short debounce; the tab
      // is named after the operation once it has.
      await page.locator('.graphiql-tab-active', { hasText: 'FromTheIDE' }).waitFor({ timeout: 5_000 });

      await page.locator('.graphiql-execute-button').click();
      const response = page.locator('.graphiql-response .CodeMirror');
      await mkdir(artifacts, { recursive: true });
      const shown = await until(async () => {
        const text = await response.innerText();
        return titles.every((title) => text.includes(title)) && text;
      }, { timeout: 15_000, interval: 100 }).catch(async (err) => {
        const failed = join(artifacts, `ide-failed-${dialect}.png`);
        await page.screenshot({ path: failed });
        throw new Error(`${err.message}; the page is in ${failed}; the response pane says: ${await response.innerText()}; requests: ${requests.map((r) => `${r.method()} ${r.url()} ${r.postData()?.slice(0, 80)}`).join('\n')}`);
      });
      assert.match(shown, /"totalCount": 2/);

      // Scroll the editor back to the start of the line for the picture.
      await editor.click();
      await page.keyboard.press('Home');
      const screenshot = join(artifacts, dialect === 'sqlite' ? 'ide.png' : `ide-${dialect}.png`);
      await page.screenshot({ path: screenshot });
      t.diagnostic(`screenshot: ${screenshot}`);

      const graphql = requests.filter((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/graphql');
      const run = graphql.find((r) => r.postDataJSON()?.query === sources.IDEQuery);
      assert.ok(run, 'the typed query was sent');
      assert.equal(run.headers().authorization, `Bearer ${devToken}`, 'with the token the server pre-filled');

      const foreign = requests.map((r) => r.url()).filter((u) => !u.startsWith('data:') && new URL(u).origin !== server.origin);
      assert.deepEqual(foreign, [], 'every request goes to the server itself');
      assert.ok(requests.some((r) => r.url().endsWith('/ide/graphiql.min.js')), 'the request log saw the page load its assets');
      assert.deepEqual(problems, []);
      await page.close();
    });
  });
}
