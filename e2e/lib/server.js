// Builds and starts the real server binary for the end-to-end tests: one
// process per test suite, each on its own free loopback port and its own
// fresh database (a temporary SQLite file, or a new PostgreSQL schema).
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import pg from 'pg';

const run = promisify(execFile);

/** The repository root: the Go module the binary is built from. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * The dialects to run against: SQLite always, PostgreSQL when
 * TEST_DATABASE_URL is set or required (TEST_REQUIRE_POSTGRES=1), as in the
 * Go tests.
 */
export function dialects() {
  // The run through a pooler is about PostgreSQL: SQLite ran already.
  if (process.env.E2E_POOLER_URL) return ['postgres'];
  const pgWanted = process.env.TEST_DATABASE_URL || process.env.TEST_REQUIRE_POSTGRES === '1';
  return pgWanted ? ['sqlite', 'postgres'] : ['sqlite'];
}

// The build, memoized: every suite of a test file shares it.
let built;

// Servers still running, with their working directories. A test file that
// is killed (a --test-timeout, a Ctrl-C) skips its after hooks, so they are
// killed on the way out rather than left listening. (A PostgreSQL schema
// cannot be dropped synchronously: it stays behind then.)
const running = new Map();
function killAll() {
  for (const [child, dir] of running) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    killAll();
    process.kill(process.pid, signal);
  });
}

/**
 * The server binary: TASK_SERVER_BIN when set (CI builds it once for the
 * whole run), else built once per test process into a temporary directory.
 */
export function serverBinary() {
  if (process.env.TASK_SERVER_BIN) return Promise.resolve(process.env.TASK_SERVER_BIN);
  built ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'taskql-e2e-bin-'));
    // An 'exit' handler cannot await, hence the synchronous removal.
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    const bin = join(dir, 'server');
    await run('go', ['build', '-o', bin, '.'], { cwd: repoRoot, maxBuffer: 16 << 20 });
    return bin;
  })();
  return built;
}

/**
 * A fresh, empty database of dialect for one server: its URL and a function
 * that removes it. PostgreSQL gets a new schema on TEST_DATABASE_URL, named
 * by the search_path parameter; a PostgreSQL that is missing or unreachable
 * throws (the caller's suite fails) rather than skipping.
 *
 * With E2E_POOLER_URL (a pooler in front of TEST_DATABASE_URL's server,
 * such as the transaction-mode PgBouncer that .ci/pgbouncer starts), the
 * server's DATABASE_URL goes through the pooler, unchanged, and its
 * DATABASE_DIRECT_URL (for LISTEN) to PostgreSQL directly, as an operator
 * sets them. The fresh database is then a database of its own instead of
 * a schema: PgBouncer 1.18 refuses a search_path startup parameter.
 */
export async function freshDatabase(dialect, dir) {
  if (dialect === 'sqlite') {
    return { url: 'sqlite://' + join(dir, 'e2e.db'), drop: async () => {} };
  }
  const base = process.env.TEST_DATABASE_URL;
  if (!base) throw new Error('TEST_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set');
  if (process.env.E2E_POOLER_URL) return freshPooledDatabase(base, process.env.E2E_POOLER_URL);
  const schema = 'e2e_' + randomBytes(6).toString('hex');
  await withAdmin(base, (c) => c.query(`CREATE SCHEMA ${schema}`));
  const u = new URL(base);
  u.searchParams.set('search_path', schema);
  return {
    url: u.toString(),
    schema,
    drop: () => withAdmin(base, (c) => c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)),
  };
}

/**
 * Ends, as a database restart or a suspending Neon compute would, the
 * sessions of TEST_DATABASE_URL named applicationName whose last statement
 * matches query (a LIKE pattern), and resolves to how many it ended.
 */
export async function terminateBackends(applicationName, query = '%') {
  const { rows } = await withAdmin(process.env.TEST_DATABASE_URL, (c) => c.query(
    'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE $2',
    [applicationName, query]));
  return rows[0].n;
}

/** A new database on base's server, reached through the pooler at poolerURL. */
async function freshPooledDatabase(base, poolerURL) {
  const name = 'e2e_' + randomBytes(6).toString('hex');
  await withAdmin(base, (c) => c.query(`CREATE DATABASE ${name}`));
  const at = (raw) => {
    const u = new URL(raw);
    u.pathname = '/' + name;
    u.searchParams.delete('search_path');
    return u.toString();
  };
  return {
    url: at(poolerURL),
    directURL: at(base),
    // FORCE: the pooler may still hold server connections to it.
    drop: () => withAdmin(base, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)),
  };
}

async function withAdmin(url, fn) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Starts the server on dialect's fresh database with env added to a minimal
 * environment, and resolves once it logs the URL it listens on. The working
 * directory is a new temporary directory, so no .env of the developer's is
 * read and a development secret lands there. On PostgreSQL, applicationName
 * names every connection of the server in pg_stat_activity, so that a test
 * can find its sessions (its LISTEN) among those of the other suites. Call
 * stop() when done.
 *
 * @returns {Promise<{url: string, origin: string, dir: string, database: string, log: () => string, stop: () => Promise<void>}>}
 */
export async function startServer({ dialect = 'sqlite', env = {}, applicationName } = {}) {
  const bin = await serverBinary();
  const dir = await mkdtemp(join(tmpdir(), 'taskql-e2e-'));
  const db = await freshDatabase(dialect, dir);
  if (applicationName && dialect === 'postgres') {
    const named = (raw) => {
      const u = new URL(raw);
      u.searchParams.set('application_name', applicationName);
      return u.toString();
    };
    db.url = named(db.url);
    // LISTEN runs on the direct URL when there is one (behind a pooler).
    if (db.directURL) db.directURL = named(db.directURL);
  }
  const child = spawn(bin, [], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME ?? dir,
      APP_ENV: 'development',
      LISTEN_ADDR: '127.0.0.1:0',
      DATABASE_URL: db.url,
      ...(db.directURL ? { DATABASE_DIRECT_URL: db.directURL } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.set(child, dir);
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (s) => { output += s; });
  child.stderr.setEncoding('utf8');

  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    running.delete(child);
    resolve({ code, signal });
  }));
  child.stderr.on('data', (s) => { output += s; });
  let origin;
  try {
    origin = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server did not log "listening" within 30s')), 30_000);
      child.stderr.on('data', () => {
        const m = /msg=listening url=(http:\/\/127\.0\.0\.1:\d+)/.exec(output);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`the server exited (code ${code}, signal ${signal}) before listening`));
      });
      child.on('error', reject);
    });
  } catch (err) {
    child.kill('SIGKILL');
    await db.drop();
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${err.message}\n--- server output ---\n${output}`);
  }

  return {
    origin,
    url: origin + '/graphql',
    dir,
    database: db.url,
    log: () => output,
    /** Shuts the server down as an orchestrator does (SIGTERM) and removes its database; throws unless it exited cleanly. */
    async stop() {
      child.kill('SIGTERM');
      const timeout = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const { code, signal } = await exited;
      clearTimeout(timeout);
      await db.drop();
      await rm(dir, { recursive: true, force: true });
      if (code !== 0) throw new Error(`the server exited with code ${code} (signal ${signal}):\n${output}`);
    },
  };
}
