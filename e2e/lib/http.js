// A fetch that records what the clients send, so tests can tell a cache hit
// (no request) from a refetch, and see methods, headers and statuses.

/**
 * Returns a fetch with the signature of the global one, and the requests it
 * has made: {method, url, headers, body, status, response} where body and
 * response are parsed JSON. Clear with `requests.length = 0`.
 */
export function recordingFetch() {
  const requests = [];
  const recorded = async (input, init = {}) => {
    const entry = {
      method: (init.method ?? 'GET').toUpperCase(),
      url: new URL(typeof input === 'string' ? input : input.url),
      headers: new Headers(init.headers),
      body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined,
      status: undefined,
      response: undefined,
    };
    requests.push(entry);
    const res = await fetch(input, init);
    entry.status = res.status;
    entry.response = await res.clone().json().catch(() => undefined);
    return res;
  };
  return { fetch: recorded, requests };
}

/**
 * Posts one GraphQL operation with the global fetch and returns the status
 * and the parsed body: for checks that no client library would let through
 * (a forged persisted-query hash, a request without a token).
 */
export async function postGraphQL(url, body, { token, headers = {} } = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json;q=0.9',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

let counter = 0;

/** A user id no other test of this process uses. */
export function newUserID(prefix = 'user') {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

/** Polls fn every interval ms until it returns something truthy, which it returns; for up to timeout ms. */
export async function until(fn, { timeout = 5000, interval = 10 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${fn}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}
