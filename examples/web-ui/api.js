// The registry's public HTTP APIs, as a browser calls them: the Image API
// (`/apis/image/v1`), referrers on the distribution API (`/v2/`) and, to
// log in, an access token from the admin API. Nothing here is private to
// this frontend.

const SESSION_KEY = 'registry-ui.session';
/** How long a login lasts: the access token expires after this. */
const TOKEN_SECONDS = 3600;

/** An API answer other than 2xx, with the OCI error code when there is one. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * The logged-in session: `{token, id, expires, subject}`, or null. Kept in
 * sessionStorage (gone with the tab) and dropped once the token expired.
 */
export function session() {
  let stored;
  try {
    stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
  } catch {
    stored = null;
  }
  if (!stored || typeof stored.token !== 'string') return null;
  if (stored.expires && Date.parse(stored.expires) <= Date.now()) {
    forget();
    return null;
  }
  return stored;
}

function forget() {
  sessionStorage.removeItem(SESSION_KEY);
}

function authHeaders() {
  const s = session();
  return s ? { Authorization: `Bearer ${s.token}` } : {};
}

/** `user:password` as Basic credentials, UTF-8 safe. */
function basic(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

async function errorOf(response) {
  let code = null;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const first = body && Array.isArray(body.errors) ? body.errors[0] : null;
    if (first) {
      code = first.code || null;
      message = first.message || message;
    }
  } catch {
    // Not the OCI envelope: keep the status line.
  }
  if (response.status === 429) {
    const retry = response.headers.get('Retry-After');
    if (retry) message += ` (try again in ${retry} s)`;
  }
  return new ApiError(response.status, code, message);
}

async function call(path, options = {}) {
  const hadSession = session() !== null;
  const response = await fetch(path, {
    ...options,
    headers: { Accept: 'application/json', ...authHeaders(), ...(options.headers || {}) },
    credentials: 'omit',
    cache: 'no-store',
  });
  if (response.status === 401 && hadSession) {
    // Expired or deleted elsewhere: the login is over.
    forget();
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

/**
 * GETs JSON as `{body}`. Pages continue from the cursors in the body
 * (`metadata.continue`, `status.tagsContinue`, `historyContinue`).
 */
export async function getJson(path) {
  const response = await call(path);
  return { body: await response.json() };
}

/** Path segments URL-encoded and joined (names keep their `/`). */
function enc(...segments) {
  return segments.map((s) => String(s).split('/').map(encodeURIComponent).join('/')).join('/');
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

const IMAGE = '/apis/image/v1';

/**
 * A digest as a path segment, unencoded: `/v2/` routes match the raw path,
 * so `%3A` would not be read as `:`. Anything but a well-formed digest is
 * refused here rather than sent.
 */
function digestSegment(digest) {
  const text = String(digest);
  if (!/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(text)) {
    throw new ApiError(400, 'DIGEST_INVALID', `Not a digest: ${text}`);
  }
  return text;
}

/** A page of the repositories the caller may pull. */
export function repositories(last, n = 200) {
  return getJson(`${IMAGE}/repositories${query({ n, last })}`);
}

/** A namespace with what it stores and its quota. */
export function namespace(ns) {
  return getJson(`${IMAGE}/namespaces/${enc(ns)}`);
}

/** A page of a namespace's ImageStreams. */
export function imageStreams(ns, last, n = 100) {
  return getJson(`${IMAGE}/namespaces/${enc(ns)}/imagestreams${query({ n, last })}`);
}

/** One ImageStream with a page of its tags. */
export function imageStream(ns, name, last, n = 200) {
  return getJson(`${IMAGE}/namespaces/${enc(ns)}/imagestreams/${enc(name)}${query({ n, last })}`);
}

/** A tag with a page of its history. */
export function imageStreamTag(ns, name, tag, last, n = 100) {
  return getJson(`${IMAGE}/namespaces/${enc(ns)}/imagestreamtags/${enc(name)}:${encodeURIComponent(tag)}${query({ n, last })}`);
}

/** An image's metadata. */
export function image(digest) {
  return getJson(`${IMAGE}/images/${digestSegment(digest)}`);
}

/** The referrers of `digest` in `repository` (an OCI image index). */
export function referrers(repository, digest) {
  return getJson(`/v2/${enc(repository)}/referrers/${digestSegment(digest)}`);
}

/**
 * Exchanges a user name and password for a short-lived access token (the
 * Image API takes primary credentials only, so a registry token from
 * `/v2/token` would not do). The password is used for this one request
 * and never stored.
 */
export async function login(user, password) {
  const random = Array.from(crypto.getRandomValues(new Uint8Array(6)),
    (b) => b.toString(16).padStart(2, '0')).join('');
  const response = await fetch('/apis/admin/v1/tokens', {
    method: 'POST',
    headers: {
      Accept: 'application/json',
      'Content-Type': 'application/json',
      Authorization: basic(user, password),
    },
    body: JSON.stringify({ name: `web-ui-${random}`, expires_in_seconds: TOKEN_SECONDS }),
    credentials: 'omit',
    cache: 'no-store',
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) error.message = 'Wrong user name or password.';
    throw error;
  }
  const created = await response.json();
  const expires = created.expires ||
    new Date(Date.now() + TOKEN_SECONDS * 1000).toISOString();
  const stored = { token: created.token, id: created.id, expires, subject: user };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(stored));
  try {
    const who = await (await call('/apis/admin/v1/whoami')).json();
    if (who && typeof who.subject === 'string') {
      stored.subject = who.subject;
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(stored));
    }
  } catch {
    // The name typed in will do for the header.
  }
  return stored;
}

/** Deletes the session's token on the server and forgets it here. */
export async function logout() {
  const s = session();
  forget();
  if (!s || !s.id) return;
  try {
    await fetch(`/apis/admin/v1/tokens/${encodeURIComponent(s.id)}`, {
      method: 'DELETE',
      headers: { Authorization: `Bearer ${s.token}` },
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    // Offline: the token still expires by itself.
  }
}
