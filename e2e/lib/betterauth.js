// A real Better Auth server, in this process: better-auth from npm with its
// jwt plugin, on an in-memory better-sqlite3 database, mounted on a Node
// http server at a free loopback port. Users sign up through its HTTP API
// and take their JWT from /api/auth/token, as a frontend does.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import { betterAuth } from 'better-auth';
import { getMigrations } from 'better-auth/db/migration';
import { toNodeHandler } from 'better-auth/node';
import { jwt } from 'better-auth/plugins';
import Database from 'better-sqlite3';

/**
 * Starts Better Auth. jwks and jwtOptions go to the jwt plugin as its
 * `jwks` and `jwt` options (e.g. `{ rotationInterval: 1 }`).
 *
 * @returns {Promise<{origin: string, signUp: Function, token: Function, jwks: Function, stop: Function}>}
 */
export async function startBetterAuth({ jwks, jwtOptions } = {}) {
  const http = createServer();
  await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${http.address().port}`;
  const db = new Database(':memory:');
  const auth = betterAuth({
    baseURL: origin,
    secret: randomBytes(32).toString('base64url'),
    database: db,
    emailAndPassword: { enabled: true },
    // Tests sign up many users in a second, and nothing may leave the machine.
    rateLimit: { enabled: false },
    telemetry: { enabled: false },
    plugins: [jwt({ jwks, jwt: jwtOptions })],
  });
  const { runMigrations } = await getMigrations(auth.options);
  await runMigrations();
  http.on('request', toNodeHandler(auth));

  return {
    origin,

    /**
     * Signs a user up with email and password, as a browser on the auth
     * server's own origin does (Better Auth refuses a sign-up without an
     * Origin header), and returns the user's id and session cookie.
     */
    async signUp({ email, name, password = randomBytes(12).toString('base64url') }) {
      const res = await fetch(`${origin}/api/auth/sign-up/email`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', origin },
        body: JSON.stringify({ email, name, password }),
      });
      const body = await res.json();
      if (res.status !== 200) throw new Error(`sign-up ${email}: ${res.status} ${JSON.stringify(body)}`);
      const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
      return { id: body.user.id, email, name, cookie };
    },

    /** The JWT Better Auth issues for the session in cookie. */
    async token(cookie) {
      const res = await fetch(`${origin}/api/auth/token`, { headers: { cookie } });
      const body = await res.json();
      if (res.status !== 200 || !body.token) throw new Error(`/api/auth/token: ${res.status} ${JSON.stringify(body)}`);
      return body.token;
    },

    /** The public keys Better Auth publishes. */
    async jwks() {
      return (await fetch(`${origin}/api/auth/jwks`)).json();
    },

    async stop() {
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
      db.close();
    },
  };
}

/** The decoded header and payload of a JWT (not verified). */
export function decodeJWT(token) {
  const [header, payload] = token.split('.', 2).map((part) => JSON.parse(Buffer.from(part, 'base64url')));
  return { header, payload };
}
