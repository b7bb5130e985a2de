// HS256 tokens for servers configured with AUTH_JWT_SECRET, minted the way
// a service sharing that secret would: with jose, not with the server's code.
import { randomBytes } from 'node:crypto';

import { SignJWT } from 'jose';

/** A new random secret, long enough for the server (at least 32 bytes). */
export function newSecret() {
  return randomBytes(32).toString('base64url');
}

/** A token for user sub, valid for ttl seconds. */
export async function mint(secret, sub, { email, name, ttl = 3600 } = {}) {
  const claims = {};
  if (email) claims.email = email;
  if (name) claims.name = name;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
    .sign(new TextEncoder().encode(secret));
}
