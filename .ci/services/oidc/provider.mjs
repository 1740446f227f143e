// A throwaway OpenID Connect provider for the registry's tests: the `oidc-provider` npm
// package (a certified OpenID Connect implementation) over HTTPS on 127.0.0.1.
//
//   node provider.mjs STATE_DIR      (run by .ci/services/oidc.sh, which installs the package
//                                     into STATE_DIR and copies this file there)
//
// STATE_DIR holds `tls/server.pem`, `tls/server.key` (a certificate for 127.0.0.1 signed by
// `tls/ca.pem`); the provider listens on a free port and writes its issuer URL to
// STATE_DIR/issuer once it answers.
//
// What tests get (a test fixture, not product code):
// - clients `registry` (the audience the registry is configured with) and `other` (a second
//   audience, for wrong-audience tests; it signs ID tokens with ES256), both public clients
//   of the device authorization grant (RFC 8628) with refresh tokens;
// - users (password `<login>-password`): alice (groups devs, qa), bob (groups ops and
//   system:masters, which the registry must drop), carol (no groups claim);
// - ID tokens that carry `groups`, `email`, `email_verified` and `preferred_username`;
// - device authorization answers with `interval: 1` (polling once a second);
// - login and consent pages a program can drive (consent is granted automatically), and two
//   test-only endpoints that drive them over HTTPS as a browser would:
//     POST /test/approve  {"user_code", "login", "password", "deny"?}
//         completes (or denies) a pending device authorization, as the user at /device;
//     POST /test/id-token {"login", "password", "client_id"?, "scope"?}
//         runs the whole device flow for a client and answers the token response
//         ({"id_token", "access_token", ...}).
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';
import * as jose from 'jose';

const stateDir = process.argv[2];
if (!stateDir) {
  console.error('usage: node provider.mjs STATE_DIR');
  process.exit(2);
}

const USERS = {
  alice: { groups: ['devs', 'qa'], name: 'Alice Example' },
  bob: { groups: ['ops', 'system:masters'], name: 'Bob Example' },
  carol: { groups: undefined, name: 'Carol Example' },
};
const passwordOf = (login) => `${login}-password`;

const SCOPE = 'openid email profile groups offline_access';

async function signingKeys() {
  const keys = [];
  for (const [alg, kid] of [['RS256', 'test-rs256'], ['ES256', 'test-es256']]) {
    const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
    keys.push({ ...(await jose.exportJWK(privateKey)), kid, alg, use: 'sig' });
  }
  return keys;
}

function deviceClient(clientId, extra = {}) {
  return {
    client_id: clientId,
    token_endpoint_auth_method: 'none',
    grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    ...extra,
  };
}

/// Form fields of a urlencoded request body (bounded).
async function formBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if ((req.headers['content-type'] || '').startsWith('application/json')) {
    return text ? JSON.parse(text) : {};
  }
  return Object.fromEntries(new URLSearchParams(text));
}

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, message) {
  return `<!DOCTYPE html><html><head><title>Sign in</title></head><body>
<h1>Sign in to the test issuer</h1>${message ? `<p class="error">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<input name="login" placeholder="login" autofocus>
<input name="password" type="password" placeholder="password">
<button type="submit">Sign in</button></form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button type="submit">Cancel</button></form>
</body></html>`;
}

/// A minimal browser over HTTPS: follows redirects by hand and keeps cookies.
class Browser {
  constructor(base) {
    this.base = base;
    this.cookies = new Map();
  }

  async request(method, path, form) {
    const url = new URL(path, this.base);
    if (url.origin !== new URL(this.base).origin) throw new Error(`left the issuer: ${url}`);
    const headers = { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return { status: res.status, location: res.headers.get('location'), text: await res.text() };
  }

  /// Follows 302/303 redirects with GET until a page answers.
  async follow(res) {
    for (let hops = 0; res.location && [302, 303].includes(res.status); hops += 1) {
      if (hops > 10) throw new Error('too many redirects');
      res = await this.request('GET', res.location);
    }
    return res;
  }
}

const field = (html, name) => {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  if (!m) throw new Error(`no ${name} field in: ${html.slice(0, 300)}`);
  return m[1];
};

/// Acts as the user at the verification URI: enters the code, confirms, signs in (or
/// cancels). Returns the final page's status.
async function approve(issuer, { user_code: userCode, login, password, deny }) {
  const browser = new Browser(issuer);
  const input = await browser.request('GET', '/device');
  const xsrf = field(input.text, 'xsrf');
  const confirm = await browser.request('POST', '/device', { xsrf, user_code: userCode });
  if (confirm.status !== 200 || !confirm.text.includes('op.deviceConfirmForm')) {
    return { status: 400, error: `the user code was not accepted: ${confirm.text.slice(0, 200)}` };
  }
  if (deny) {
    const aborted = await browser.request('POST', '/device', {
      xsrf: field(confirm.text, 'xsrf'), user_code: userCode, abort: 'yes',
    });
    return { status: 200, denied: true, page: aborted.status };
  }
  const interaction = await browser.follow(await browser.request('POST', '/device', {
    xsrf: field(confirm.text, 'xsrf'), user_code: userCode, confirm: 'yes',
  }));
  const action = interaction.text.match(/action="(\/interaction\/[^"]+\/login)"/);
  if (!action) return { status: 500, error: `no login form: ${interaction.text.slice(0, 200)}` };
  const done = await browser.follow(await browser.request('POST', action[1], { login, password }));
  if (!done.text.includes('Sign-in Success')) {
    return { status: 401, error: `sign-in failed: ${done.text.slice(0, 200)}` };
  }
  return { status: 200, approved: true };
}

/// The whole device flow for a client, as a test needs an ID token.
async function idToken(issuer, { login, password, client_id: clientId = 'registry', scope = SCOPE }) {
  const post = async (path, form) => {
    const res = await fetch(new URL(path, issuer), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
    return { status: res.status, json: await res.json() };
  };
  const auth = await post('/device/auth', { client_id: clientId, scope });
  if (auth.status !== 200) return { status: auth.status, error: auth.json };
  const approved = await approve(issuer, { user_code: auth.json.user_code, login, password });
  if (!approved.approved) return approved;
  const token = await post('/token', {
    grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
    device_code: auth.json.device_code,
    client_id: clientId,
  });
  return { status: token.status, body: token.json };
}

const server = https.createServer({
  key: readFileSync(join(stateDir, 'tls/server.key')),
  cert: readFileSync(join(stateDir, 'tls/server.pem')),
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `https://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    deviceClient('registry'),
    deviceClient('other', { id_token_signed_response_alg: 'ES256' }),
  ],
  jwks: { keys: await signingKeys() },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  // Scope claims go into the ID token itself (the registry reads groups from it).
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
  },
  issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && code.scopes.has('offline_access'),
  async findAccount(_ctx, id) {
    const user = USERS[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: `${id}@example.com`,
          email_verified: true,
          name: user.name,
          preferred_username: id,
          ...(user.groups ? { groups: user.groups } : {}),
        };
      },
    };
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { DeviceCode: 600, IdToken: 3600, AccessToken: 3600 },
  pkce: { required: () => false },
});
provider.proxy = false;

provider.use(async (ctx, next) => {
  const { path, method } = ctx;
  const m = path.match(/^\/interaction\/([^/]+)(\/login|\/abort)?$/);
  if (m) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const redirect = (to) => { ctx.status = 303; ctx.redirect(to); };
    if (method === 'GET' && !m[2]) {
      if (details.prompt.name === 'login') {
        ctx.type = 'html';
        ctx.body = loginPage(details.uid);
        return;
      }
      // Consent: first-party test clients get what they asked for.
      const { prompt: { details: missing }, params, session } = details;
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      redirect(await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId } }));
      return;
    }
    if (method === 'POST' && m[2] === '/login') {
      const { login = '', password = '' } = await formBody(ctx.req);
      if (!USERS[login] || password !== passwordOf(login)) {
        ctx.status = 401;
        ctx.type = 'html';
        ctx.body = loginPage(details.uid, 'wrong login or password');
        return;
      }
      redirect(await provider.interactionResult(
        ctx.req,
        ctx.res,
        { login: { accountId: login } },
        { mergeWithLastSubmission: false },
      ));
      return;
    }
    if (method === 'POST' && m[2] === '/abort') {
      redirect(await provider.interactionResult(ctx.req, ctx.res, {
        error: 'access_denied', error_description: 'End-User aborted interaction',
      }, { mergeWithLastSubmission: false }));
      return;
    }
  }
  if (method === 'POST' && (path === '/test/approve' || path === '/test/id-token')) {
    let result;
    try {
      const body = await formBody(ctx.req);
      result = path === '/test/approve' ? await approve(issuer, body) : await idToken(issuer, body);
    } catch (e) {
      result = { status: 500, error: String(e && e.stack ? e.stack : e) };
    }
    ctx.status = result.status;
    ctx.body = result.body ?? result;
    return;
  }
  await next();
  // RFC 8628 lets the server choose the polling interval (5 s when absent): 1 s keeps tests
  // quick.
  if (method === 'POST' && path === '/device/auth' && ctx.status === 200 && ctx.body) {
    ctx.body.interval = 1;
  }
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));
server.on('request', provider.callback());

// Published last: the service script waits for this file.
writeFileSync(join(stateDir, 'issuer.tmp'), `${issuer}\n`);
renameSync(join(stateDir, 'issuer.tmp'), join(stateDir, 'issuer'));
console.error(`oidc test provider: issuer ${issuer}`);
