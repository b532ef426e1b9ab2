// The node's HTTP API, always called with same-origin relative URLs: the
// node serving the page forwards writes to the leader and hardware calls to
// the device's owner, so the UI never talks to another server.

const base = new URL('../api/', document.baseURI);

/** An API call that failed: status 0 when the server could not be reached. */
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
  toString() {
    return this.status ? `${this.status} ${statusText(this.status)}: ${this.message}` : this.message;
  }
}

function statusText(code) {
  return { 400: 'bad request', 401: 'sign in needed', 403: 'forbidden', 404: 'not found', 409: 'conflict', 502: 'owner unreachable', 503: 'unavailable' }[code] || 'error';
}

// The API token the user signed in with lives in the tab's session storage
// (gone when the tab closes) and goes with every call.
const TOKEN_KEY = 'mozpool-token';

/** token is the token signed in with ('' for none). */
export function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

/** setToken keeps a token for this tab ('' forgets it). */
export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
}

/** Who the server takes the user for, and the cluster's policy (whoami). */
export const auth = { name: '', role: '', anonymous: true, policy: 'open' };

const RANK = { reader: 1, user: 2, operator: 3, admin: 4 };

/**
 * may says whether the user may do what needs role: the token's role is at
 * least that, or (the open policy) requests are anyone's to make, renew and
 * return. The server decides; the UI only hides what would be refused.
 */
export function may(role) {
  if ((RANK[auth.role] || 0) >= RANK[role]) return true;
  return role === 'user' && auth.policy === 'open';
}

/** whoami asks the server who the user is; a 401 under strict is an anonymous user. */
export async function whoami() {
  try {
    Object.assign(auth, { role: '', anonymous: true }, await get('auth/whoami/'));
  } catch (e) {
    if (e.status !== 401 || token()) throw e;
    Object.assign(auth, { name: '', role: '', anonymous: true, policy: 'strict' });
  }
  return auth;
}

/** What the last answer said about the server: its node id and clock skew. */
export const server = { servedBy: '', skewMs: 0 };

/**
 * request calls the API. path is relative to /api/ ("device/list/?details=1").
 * With raw set it resolves to {text, data} so callers can skip unchanged
 * answers without parsing them.
 */
export async function request(method, path, body, { raw = false, signal } = {}) {
  // Reads revalidate with the server's ETag (a 304 while nothing changed
  // spares re-sending the whole device list); writes never touch the cache.
  const init = { method, signal, cache: method === 'GET' ? 'no-cache' : 'no-store', headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const t = token();
  if (t) init.headers.Authorization = `Bearer ${t}`;
  let resp;
  const sent = Date.now();
  const early = method === 'GET' && window.__mozpoolEarly?.[path];
  if (early) delete window.__mozpoolEarly[path]; // index.html started it
  try {
    resp = await (early || fetch(new URL(path, base), init));
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new APIError(0, 'cannot reach the server');
  }
  const by = resp.headers.get('X-Mozpool-Served-By');
  if (by) server.servedBy = by;
  const date = resp.headers.get('Date');
  if (date) {
    // Date has one-second resolution: keep the skew only when it is larger.
    const skew = Date.parse(date) + 500 - (sent + Date.now()) / 2;
    server.skewMs = Math.abs(skew) > 1500 ? skew : 0;
  }
  const text = await resp.text();
  if (!resp.ok) {
    let msg = text.trim();
    try { msg = JSON.parse(text).error || msg; } catch { /* plain text */ }
    throw new APIError(resp.status, msg || resp.statusText);
  }
  const data = text ? JSON.parse(text) : null;
  return raw ? { text, data } : data;
}

export const get = (path, opts) => request('GET', path, undefined, opts);
export const post = (path, body = {}, opts) => request('POST', path, body, opts);

/** enc escapes one path segment. */
export const enc = encodeURIComponent;

/** now is the server's idea of the current time, in ms. */
export const now = () => Date.now() + server.skewMs;

/** parseTime reads the API's naive UTC ISO time ("2013-02-22T22:29:06.412207"). */
export function parseTime(s) {
  if (!s) return NaN;
  return Date.parse(s.slice(0, 23) + 'Z');
}

/** formatTime renders ms as "2013-02-22 22:29:06" (UTC); withMs adds ".412". */
export function formatTime(ms, withMs = false) {
  if (!Number.isFinite(ms)) return '';
  const s = new Date(ms).toISOString().replace('T', ' ');
  return withMs ? s.slice(0, 23) : s.slice(0, 19);
}

/** relative renders a duration from now: "in 52m", "3h ago". */
export function relative(ms) {
  if (!Number.isFinite(ms)) return '';
  let d = Math.round((ms - now()) / 1000);
  const past = d < 0;
  d = Math.abs(d);
  let s;
  if (d < 60) s = `${d}s`;
  else if (d < 3600) s = `${Math.floor(d / 60)}m`;
  else if (d < 86400) s = `${Math.floor(d / 3600)}h${String(Math.floor(d % 3600 / 60)).padStart(2, '0')}`;
  else s = `${Math.floor(d / 86400)}d${Math.floor(d % 86400 / 3600)}h`;
  return past ? `${s} ago` : `in ${s}`;
}

/** eventsURL is the node's state-change event stream (Server-Sent Events). */
export function eventsURL() { return new URL('events/', base).href; }
