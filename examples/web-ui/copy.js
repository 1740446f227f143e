// Copyable values: the clipboard API where the page may use it (HTTPS or
// localhost), else execCommand on a temporary text field, else the value
// is left selected for the user to copy.

import { h } from './dom.js';

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
    onclick: async () => {
      if (await copyText(value)) {
        button.textContent = 'Copied';
        toast(`Copied ${label}`);
        setTimeout(() => { button.textContent = 'Copy'; }, 1500);
      } else {
        selectContents(text);
        toast('Selected: press Ctrl+C (⌘C) to copy');
      }
    },
  }, 'Copy');
  return h('div', { class: options.command ? 'copy copy--command' : 'copy' },
    options.command ? h('span', { class: 'copy__prompt', 'aria-hidden': 'true' }, '$') : null,
    text, button);
}
