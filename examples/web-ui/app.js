// The app shell: routing (history.pushState; the server answers every
// /ui/* path with index.html), the header's login state, the login form.

import * as api from './api.js';
import { h, replace } from './dom.js';
import * as views from './views.js';

const main = document.getElementById('main');
const crumbs = document.getElementById('crumbs');
const account = document.getElementById('account');

/** The page a path names: `{view, params}`, or null. */
function route(pathname) {
  const path = pathname.replace(/^\/ui\/?/, '').replace(/\/+$/, '');
  const parts = path === '' ? [] : path.split('/').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  if (parts.length === 0) return { view: views.repositories, params: {} };
  if (parts[0] === 'namespaces' && parts.length === 2) {
    return { view: views.namespace, params: { ns: parts[1] } };
  }
  if (parts[0] === 'namespaces' && parts[2] === 'imagestreams' && parts.length >= 4) {
    return { view: views.imageStream, params: { ns: parts[1], name: parts.slice(3).join('/') } };
  }
  if (parts[0] === 'namespaces' && parts[2] === 'imagestreamtags' && parts.length >= 4) {
    const nameTag = parts.slice(3).join('/');
    const colon = nameTag.lastIndexOf(':');
    if (colon > 0) {
      return {
        view: views.tag,
        params: { ns: parts[1], name: nameTag.slice(0, colon), tag: nameTag.slice(colon + 1) },
      };
    }
  }
  if (parts[0] === 'images' && parts.length === 2) {
    return { view: views.image, params: { digest: parts[1] } };
  }
  return null;
}

let renderCount = 0;

/** Renders the page of the current URL. `focus`: move focus to its heading. */
async function render(focus) {
  const current = ++renderCount;
  renderAccount();
  const found = route(location.pathname);
  const ctx = {
    crumbs: (items) => replace(crumbs, views.breadcrumbs(items)),
    stale: () => current !== renderCount,
  };
  replace(main, h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  document.getElementById('toast').classList.remove('toast--shown');
  try {
    if (!found) {
      ctx.crumbs([]);
      replace(main, views.notFound(location.pathname));
    } else {
      const content = await found.view(found.params, ctx);
      if (ctx.stale()) return;
      replace(main, content);
    }
  } catch (error) {
    if (ctx.stale()) return;
    renderAccount();
    if (error instanceof api.ApiError && error.status === 401) {
      replace(main, loginForm('Sign in to see this page.'));
    } else {
      replace(main, views.failure(error));
    }
  }
  document.title = `${(main.querySelector('h1') || {}).textContent || 'Registry'} · Registry`;
  if (focus) {
    const heading = main.querySelector('h1');
    (heading || main).setAttribute('tabindex', '-1');
    (heading || main).focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
}

function navigate(href) {
  if (href === location.pathname + location.search) return;
  history.pushState(null, '', href);
  render(true);
}

function renderAccount() {
  const s = api.session();
  if (s) {
    const who = s.subject.replace(/^user:/, '');
    replace(account,
      h('span', { class: 'account__who' },
        h('span', { class: 'visually-hidden' }, 'Signed in as '),
        h('span', { class: 'account__avatar', 'aria-hidden': 'true' }, who.slice(0, 1).toUpperCase()),
        h('span', { class: 'account__name' }, who)),
      h('button', { type: 'button', class: 'button button--quiet', onclick: onLogout }, 'Sign out'));
  } else {
    replace(account,
      h('span', { class: 'account__anon' }, 'Anonymous'),
      h('button', {
        type: 'button',
        class: 'button',
        onclick: () => {
          replace(main, loginForm());
          main.querySelector('input').focus();
        },
      }, 'Sign in'));
  }
}

async function onLogout() {
  await api.logout();
  render(true);
}

function loginForm(reason) {
  const error = h('p', { class: 'form-error', id: 'login-error', role: 'alert', hidden: true });
  const user = h('input', {
    id: 'login-user', name: 'username', autocomplete: 'username', required: true,
    autocapitalize: 'none', spellcheck: 'false',
  });
  const password = h('input', {
    id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true,
  });
  const submit = h('button', { type: 'submit', class: 'button button--primary' }, 'Sign in');
  const form = h('form', {
    class: 'login',
    'aria-describedby': 'login-error',
    onsubmit: async (event) => {
      event.preventDefault();
      submit.disabled = true;
      error.hidden = true;
      try {
        await api.login(user.value.trim(), password.value);
        password.value = '';
        render(true);
      } catch (e) {
        error.textContent = e.message || String(e);
        error.hidden = false;
        password.select();
        password.focus();
      } finally {
        submit.disabled = false;
      }
    },
  },
  h('div', { class: 'field' }, h('label', { for: 'login-user' }, 'User name'), user),
  h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password or access token'), password),
  error,
  submit);
  crumbs.replaceChildren();
  return h('section', { class: 'card card--narrow', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in'),
    reason ? h('p', { class: 'lead' }, reason) : null,
    form,
    h('p', { class: 'hint' },
      'Your password is sent once, for an access token that expires in an hour. ',
      'This tab keeps the token, never the password, and sign-out deletes it.'));
}

// Links inside the app are followed without a reload; modified clicks
// (new tab, download) keep their usual meaning.
document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0 ||
      event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const anchor = event.target.closest('a[href]');
  if (!anchor || anchor.target || anchor.hasAttribute('download')) return;
  const url = new URL(anchor.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/ui')) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', () => render(true));

// A token that expires while the page is open ends the session visibly.
setInterval(() => {
  const shown = account.querySelector('.account__name') !== null;
  if (shown && api.session() === null) render(false);
}, 30000);

document.getElementById('host').textContent = location.host;
render(false);
