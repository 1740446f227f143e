// Building the page from API data without ever parsing it as HTML: every
// string becomes a text node or an attribute value, never markup.

/**
 * Creates an element. `attrs` values: strings (attributes), `on*`
 * functions (listeners), `false`/`null`/`undefined` (skipped). Children:
 * nodes, strings (text nodes), arrays (flattened), null (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A link inside the app (followed without reloading the page). */
export function link(href, ...children) {
  return h('a', { href, 'data-nav': true }, ...children);
}

/** `/ui/` joined with URL-encoded path segments. */
export function uiPath(...segments) {
  return '/ui/' + segments.map((s) => encodeURIComponent(s)).join('/');
}

/** The path of an ImageStream page; its name may hold `/`. */
export function streamPath(ns, name) {
  return uiPath('namespaces', ns, 'imagestreams') + '/' + name.split('/').map(encodeURIComponent).join('/');
}

/** The path of a tag's history page. */
export function tagPath(ns, name, tag) {
  return uiPath('namespaces', ns, 'imagestreamtags') + '/' +
    name.split('/').map(encodeURIComponent).join('/') + ':' + encodeURIComponent(tag);
}

/** The path of an image page. */
export function imagePath(digest) {
  const text = String(digest);
  // A well-formed digest reads better unencoded (`:` is fine in a path).
  return /^[a-z0-9+._-]+:[a-zA-Z0-9=_-]+$/.test(text) ? `/ui/images/${text}` : uiPath('images', text);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 2811478 → "2.7 MiB". */
export function humanSize(bytes) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '—';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

const DATE_FORMAT = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});

/** A `<time>` for an RFC 3339 string: local date, the exact value as tooltip. */
export function time(rfc3339) {
  if (!rfc3339) return h('span', { class: 'muted' }, '—');
  const date = new Date(rfc3339);
  if (Number.isNaN(date.getTime())) return h('span', {}, rfc3339);
  return h('time', { datetime: rfc3339, title: rfc3339 }, DATE_FORMAT.format(date));
}

/** `sha256:0123456789abcdef…` → `sha256:0123456789ab`. */
export function shortDigest(digest) {
  const [algorithm, hex] = String(digest).split(':');
  return hex ? `${algorithm}:${hex.slice(0, 12)}` : String(digest);
}

/** A digest shortened for tables, linking to its image page. */
export function digestLink(digest) {
  return h('a', { href: imagePath(digest), 'data-nav': true, class: 'digest', title: digest },
    h('code', {}, shortDigest(digest)));
}

/** A table that turns into labelled rows on narrow screens. */
export function table(caption, headers, rows, options = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: options.className ? `data ${options.className}` : 'data' },
      caption ? h('caption', { class: options.showCaption ? '' : 'visually-hidden' }, caption) : null,
      h('thead', {}, h('tr', {}, headers.map((label) => h('th', { scope: 'col' }, label)))),
      h('tbody', {}, rows.map((cells) =>
        h('tr', {}, cells.map((cell, i) =>
          h('td', { 'data-label': headers[i] }, cell)))))));
}

/** An empty-state paragraph. */
export function empty(text) {
  return h('p', { class: 'empty' }, text);
}
