// Copyable values: the clipboard API where the page may use it (HTTPS or
// localhost), else execCommand on a temporary text field, else the value
// is left selected for the user to copy.

import { h, shortDigest } from './dom.js';

function toast(text) {
  const el = document.getElementById('toast');
  el.textContent = text;
  el.classList.add('toast--shown');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove('toast--shown'), 2200);
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Denied (no focus, a policy): try the old way.
    }
  }
  const field = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
  field.value = text;
  document.body.appendChild(field);
  field.select();
  try {
    return document.execCommand('copy');
  } catch {
    return false;
  } finally {
    field.remove();
  }
}

function selectContents(el) {
  const range = document.createRange();
  range.selectNodeContents(el);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

async function onCopy(button, value, label, onFail) {
  if (await copyText(value)) {
    const was = button.textContent;
    button.textContent = 'Copied';
    toast(`Copied ${label}`);
    setTimeout(() => { button.textContent = was; }, 1500);
  } else {
    onFail();
  }
}

/**
 * `value` in full (it wraps on narrow screens) with a Copy button; `label`
 * names it for screen readers. `command`: shown as a shell command.
 */
export function copyable(value, label, options = {}) {
  const text = h('code', { class: 'copy__value' }, value);
  const button = h('button', {
    type: 'button',
    class: 'button button--small copy__button',
    'aria-label': `Copy ${label}`,
    onclick: () => onCopy(button, value, label, () => {
      selectContents(text);
      toast('Selected: press Ctrl+C (⌘C) to copy');
    }),
  }, 'Copy');
  return h('div', { class: options.command ? 'copy copy--command' : 'copy' },
    options.command ? h('span', { class: 'copy__prompt', 'aria-hidden': 'true' }, '$') : null,
    text, button);
}

/**
 * A shortened digest with a small button copying the whole of it (for
 * tables, where the full value would not fit a narrow screen).
 */
export function copyDigest(digest, label) {
  const short = h('code', { class: 'digest', title: digest }, shortDigest(digest));
  const button = h('button', {
    type: 'button',
    class: 'button button--tiny',
    'aria-label': `Copy ${label}`,
    title: `Copy ${digest}`,
    onclick: () => onCopy(button, digest, label, () => {
      short.textContent = digest;
      selectContents(short);
      toast('Selected: press Ctrl+C (⌘C) to copy');
    }),
  }, 'Copy');
  return h('span', { class: 'digest-copy' }, short, button);
}
