// Form pieces shared by the pages.

import { h, esc } from './dom.js';

/**
 * bootConfigFields builds one text field per boot-config key of an image
 * and reads them back as the boot-config object.
 */
export function bootConfigFields() {
  const el = h('span.bootconfig');
  let keys = [];
  return {
    el,
    /** setKeys shows the fields of keys, keeping values typed so far. */
    setKeys(next) {
      next = next || [];
      if (next.join('\u0001') === keys.join('\u0001')) return;
      const old = this.values();
      keys = next;
      el.replaceChildren(...keys.map(k => h('label.field', h('span', k),
        h('input', { type: 'text', name: k, value: old[k] || remembered(k), placeholder: k === 'b2gbase' ? 'http://…/b2g/' : '', size: 28 }))));
    },
    values() {
      const out = {};
      for (const i of el.querySelectorAll('input')) out[i.name] = i.value.trim();
      return out;
    },
    complete() {
      return keys.every(k => this.values()[k] !== '');
    },
    remember() {
      for (const [k, v] of Object.entries(this.values())) localStorage.setItem('mozpool.bootconfig.' + k, v);
    },
  };
}

function remembered(k) {
  return localStorage.getItem('mozpool.bootconfig.' + k) || '';
}

/** confirmMany asks before acting on many rows at once. */
export function confirmMany(n, what) {
  return n < 25 || window.confirm(`${what} on ${n} devices?`);
}

/** note is a muted hint. */
export const note = text => h('span.note', text);

/** link is the HTML of an in-app link. */
export const link = (hash, text, cls = '') => `<a href="#${esc(hash)}" class="${cls}">${esc(text)}</a>`;
