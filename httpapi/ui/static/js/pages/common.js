// Pieces every table page uses.

import { h, debounce } from '../dom.js';

/** pageShell builds a page: a heading row (title, extras, search), a slot for actions, the table. */
export function pageShell({ id, title, table, extras = [], actions = null, searchHint = 'search' }) {
  const search = h('input', { type: 'search', placeholder: `${searchHint}  ( / )`, 'aria-label': 'search', spellcheck: false });
  search.addEventListener('input', debounce(() => table.search(search.value), 60));
  const el = h('section.page', { id: `page-${id}`, hidden: true },
    h('div.page-head', h('h1', title), ...extras, h('span.spacer'), search),
    actions,
    table.el);
  return { el, search };
}

/** countLabel says what the buttons act on: "3 devices". */
export function countLabel(n, word) {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}
