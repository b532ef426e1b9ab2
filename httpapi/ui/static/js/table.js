// VirtualTable: a sortable, searchable, multi-select table that keeps only
// the rows in view in the DOM, so 10,000 devices scroll and refresh as fast
// as 10. Rows have one fixed height; a tall spacer gives the scroll bar its
// size and a small pool of row elements is moved into view.
//
// Each refresh hands it a fresh array of rows (setRows); selection (by row
// key), sort, search and scroll position survive it. Sort keys and the
// search text of every row are computed once per refresh, not per compare.

import { esc, plural } from './dom.js';

const OVERSCAN = 8;

/** naturalKey lower-cases s and pads digit runs, so "panda-10" sorts after "panda-9". */
export function naturalKey(s) {
  s = String(s ?? '');
  let k = natural.get(s);
  if (k === undefined) {
    if (natural.size > 200000) natural.clear();
    k = s.toLowerCase().replace(/\d+/g, d => d.padStart(12, '0'));
    natural.set(s, k);
  }
  return k;
}

// natural remembers keys: the same names and states come back every poll.
const natural = new Map();

/**
 * column options:
 *   id, title, width (a CSS grid track: "120px", "minmax(8em, 1fr)")
 *   html(row)     the cell's HTML (escape text with esc)
 *   sortKey(row)  a number or a string (default: naturalKey of text)
 *   text(row)     plain text for search and the default sort key
 *   tip(row)      optional tooltip
 *   cls           optional class of the cells
 */
export class VirtualTable {
  constructor({ columns, key, rowHeight = 30, selectable = true, canSelect = () => true,
    sort = null, emptyText = 'Nothing to show.', onSelect = () => {}, onRowClick = null,
    label = 'rows', onRender = null }) {
    this.columns = columns;
    this.key = key;
    this.rowHeight = rowHeight;
    this.selectable = selectable;
    this.canSelect = canSelect;
    this.onSelect = onSelect;
    this.onRowClick = onRowClick;
    this.onRender = onRender;
    this.label = label;
    this.emptyText = emptyText;
    this.sort = sort || { id: columns[0].id, dir: 1 };
    this.rows = [];
    this.byKey = new Map();
    this.view = []; // indexes into rows, filtered and sorted
    this.hay = [];
    this.selection = new Set();
    this.anchor = null;
    this.query = [];
    this.filter = null;
    this.pool = [];
    this.flashKey = null;
    this.build();
  }

  /** tracks is the grid template; it also sets --vt-min, the width below which the table scrolls sideways. */
  tracks() {
    const cols = this.columns.filter(c => !this.hiddenCols.has(c.id));
    const tracks = (this.selectable ? ['2.2rem'] : []).concat(cols.map(c => c.width || 'minmax(6rem, 1fr)'));
    const min = tracks.reduce((sum, t) => sum + (parseFloat(t.replace(/^minmax\(/, '')) || 0), 0);
    this.el?.style.setProperty('--vt-min', `${min}rem`);
    return tracks.join(' ');
  }

  /** hideColumns hides the columns with these ids (and shows the others). */
  hideColumns(ids) {
    this.hiddenCols = new Set(ids);
    this.el.style.setProperty('--vt-cols', this.tracks());
    this.columns.forEach((c, i) => {
      const off = this.hiddenCols.has(c.id);
      this.head.querySelector(`[data-col="${CSS.escape(c.id)}"]`).hidden = off;
      for (const r of this.pool) r.cells[i].hidden = off;
    });
  }

  build() {
    this.hiddenCols = new Set();
    this.el = document.createElement('div');
    this.el.className = 'vt';
    this.el.style.setProperty('--vt-cols', this.tracks());
    this.el.style.setProperty('--vt-row', this.rowHeight + 'px');
    this.el.innerHTML = `
      <div class="vt-scroll" tabindex="-1" role="grid" aria-multiselectable="${this.selectable}">
        <div class="vt-head" role="row">${this.selectable ? '<label class="vt-cell vt-check"><input type="checkbox" aria-label="select all shown"></label>' : ''}${
          this.columns.map(c => `<button type="button" class="vt-cell vt-sort c-${esc(c.id)} ${c.cls || ''}" data-col="${esc(c.id)}">${esc(c.title)}<i></i></button>`).join('')}</div>
        <div class="vt-body" role="rowgroup"></div>
        <div class="vt-empty" hidden></div>
      </div>
      <div class="vt-foot"><span class="vt-count"></span><span class="vt-selinfo"></span><button type="button" class="link vt-clear" hidden>clear selection</button></div>`;
    this.scroller = this.el.querySelector('.vt-scroll');
    this.head = this.el.querySelector('.vt-head');
    this.body = this.el.querySelector('.vt-body');
    this.empty = this.el.querySelector('.vt-empty');
    this.count = this.el.querySelector('.vt-count');
    this.selInfo = this.el.querySelector('.vt-selinfo');
    this.clearBtn = this.el.querySelector('.vt-clear');
    this.all = this.head.querySelector('input');

    this.head.addEventListener('click', e => {
      const b = e.target.closest('.vt-sort');
      if (!b) return;
      const id = b.dataset.col;
      this.sort = { id, dir: this.sort.id === id ? -this.sort.dir : 1 };
      this.refreshView();
    });
    if (this.all) this.all.addEventListener('change', () => this.toggleAllShown());
    this.clearBtn.addEventListener('click', () => this.clearSelection());
    this.body.addEventListener('mousedown', e => { if (e.shiftKey) e.preventDefault(); });
    this.body.addEventListener('click', e => this.click(e));
    this.scroller.addEventListener('scroll', () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(this.scroller);
  }

  /** setRows replaces the data; selection, sort, search and scroll are kept. */
  setRows(rows) {
    this.rows = rows;
    this.byKey = new Map();
    const cols = this.columns;
    this.hay = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      this.byKey.set(this.key(r), i);
      let s = '';
      for (const c of cols) s += (c.text ? c.text(r) : '') + '\u0001';
      this.hay[i] = s.toLowerCase();
    }
    // Forget selected rows that are gone (a closed request, a removed device).
    for (const k of this.selection) if (!this.byKey.has(k)) this.selection.delete(k);
    this.refreshView();
  }

  /** search filters by words, all of which must appear; "-word" excludes. */
  search(text) {
    this.query = text.toLowerCase().split(/\s+/).filter(w => w && w !== '-');
    this.refreshView();
  }

  /** setFilter adds a row predicate (null: none). */
  setFilter(fn) {
    this.filter = fn;
    this.refreshView();
  }

  refreshView() {
    const { rows, hay, query, filter } = this;
    const view = [];
    outer: for (let i = 0; i < rows.length; i++) {
      if (filter && !filter(rows[i])) continue;
      for (const w of query) {
        if (w[0] === '-' ? hay[i].includes(w.slice(1)) : !hay[i].includes(w)) continue outer;
      }
      view.push(i);
    }
    const col = this.columns.find(c => c.id === this.sort.id) || this.columns[0];
    const keyOf = col.sortKey || (r => naturalKey(col.text ? col.text(r) : ''));
    const keys = new Array(rows.length);
    const ties = new Array(rows.length);
    for (const i of view) {
      keys[i] = keyOf(rows[i]);
      ties[i] = naturalKey(this.key(rows[i]));
    }
    const dir = this.sort.dir;
    view.sort((a, b) => {
      const ka = keys[a], kb = keys[b];
      if (ka < kb) return -dir;
      if (ka > kb) return dir;
      return ties[a] < ties[b] ? -1 : ties[a] > ties[b] ? 1 : 0;
    });
    this.view = view;
    for (const b of this.head.querySelectorAll('.vt-sort')) {
      const on = b.dataset.col === col.id;
      b.classList.toggle('sorted', on);
      b.setAttribute('aria-sort', on ? (dir > 0 ? 'ascending' : 'descending') : 'none');
      b.querySelector('i').textContent = on ? (dir > 0 ? '▲' : '▼') : '';
    }
    this.body.style.height = view.length * this.rowHeight + 'px';
    this.empty.hidden = view.length > 0;
    this.empty.textContent = rows.length ? 'No row matches the search.' : this.emptyText;
    this.render();
    this.footer();
  }

  schedule() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => { this.pending = 0; this.render(); });
  }

  /** render fills the pool of row elements with the rows in view. */
  render() {
    const rh = this.rowHeight;
    const top = this.scroller.scrollTop - this.body.offsetTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / rh) - OVERSCAN);
    const last = Math.min(this.view.length, Math.ceil((top + height) / rh) + OVERSCAN);
    const need = last - first;
    while (this.pool.length < need) this.pool.push(this.newRow());
    for (let p = 0; p < this.pool.length; p++) {
      const el = this.pool[p];
      const vi = first + p;
      if (vi >= last) {
        if (!el.hidden) el.hidden = true;
        continue;
      }
      el.hidden = false;
      const row = this.rows[this.view[vi]];
      const k = this.key(row);
      el.style.transform = `translateY(${vi * rh}px)`;
      el.dataset.vi = vi;
      el.dataset.key = k;
      const sel = this.selection.has(k);
      el.classList.toggle('selected', sel);
      el.classList.toggle('flash', k === this.flashKey);
      el.setAttribute('aria-selected', String(sel));
      if (this.selectable) {
        const box = el.firstChild.firstChild;
        box.checked = sel;
        box.disabled = !this.canSelect(row);
      }
      const cells = el.cells;
      for (let c = 0; c < this.columns.length; c++) {
        const col = this.columns[c];
        const html = col.html(row);
        if (cells[c].__html !== html) {
          cells[c].innerHTML = html;
          cells[c].__html = html;
        }
        if (col.tip) cells[c].title = col.tip(row) || '';
      }
    }
    if (this.onRender && need > 0) this.onRender(need);
  }

  newRow() {
    const el = document.createElement('div');
    el.className = 'vt-row';
    el.setAttribute('role', 'row');
    if (this.selectable) {
      // A div, not a label: a label would send a second click to the box.
      el.innerHTML = '<div class="vt-cell vt-check"><input type="checkbox" tabindex="-1" aria-label="select row"></div>';
    }
    el.cells = this.columns.map(c => {
      const d = document.createElement('div');
      d.className = `vt-cell c-${c.id}` + (c.cls ? ' ' + c.cls : '');
      d.setAttribute('role', 'gridcell');
      d.hidden = this.hiddenCols.has(c.id);
      el.append(d);
      return d;
    });
    this.body.append(el);
    return el;
  }

  click(e) {
    const el = e.target.closest('.vt-row');
    if (!el || e.target.closest('a, button, select, textarea, input[type=text]')) return;
    const row = this.rows[this.view[+el.dataset.vi]];
    if (!row) return;
    if (!this.selectable) {
      if (this.onRowClick) this.onRowClick(row);
      return;
    }
    // A click on the box itself toggles it natively; render then sets
    // every box from the selection, which wins (no preventDefault: a
    // cancelled click would restore the box after we set it).
    const k = this.key(row);
    if (!this.canSelect(row)) return;
    const vi = +el.dataset.vi;
    const ai = e.shiftKey && this.anchor != null ? this.view.indexOf(this.byKey.get(this.anchor)) : -1;
    if (ai >= 0) {
      // A range takes the anchor row's state, over the rows shown.
      const on = this.selection.has(this.anchor);
      for (let i = Math.min(ai, vi); i <= Math.max(ai, vi); i++) {
        const r = this.rows[this.view[i]];
        if (!this.canSelect(r)) continue;
        if (on) this.selection.add(this.key(r)); else this.selection.delete(this.key(r));
      }
    } else {
      if (this.selection.has(k)) this.selection.delete(k); else this.selection.add(k);
      this.anchor = k;
    }
    this.selectionChanged();
  }

  toggleAllShown() {
    const shown = this.view.map(i => this.rows[i]).filter(this.canSelect);
    const allOn = shown.length > 0 && shown.every(r => this.selection.has(this.key(r)));
    for (const r of shown) {
      if (allOn) this.selection.delete(this.key(r)); else this.selection.add(this.key(r));
    }
    this.selectionChanged();
  }

  clearSelection() {
    this.selection.clear();
    this.anchor = null;
    this.selectionChanged();
  }

  selectionChanged() {
    this.render();
    this.footer();
    this.onSelect(this.selected());
  }

  /** selected returns the selected rows, hidden by the search or not, in view order first. */
  selected() {
    const out = [];
    for (const k of this.selection) {
      const i = this.byKey.get(k);
      if (i !== undefined) out.push(this.rows[i]);
    }
    return out;
  }

  /** row returns the current row with key k, if any. */
  row(k) {
    const i = this.byKey.get(k);
    return i === undefined ? undefined : this.rows[i];
  }

  footer() {
    const n = this.rows.length, shown = this.view.length;
    this.count.textContent = shown === n ? plural(n, this.label.replace(/s$/, ''), this.label)
      : `${shown.toLocaleString('en-US')} of ${plural(n, this.label.replace(/s$/, ''), this.label)} shown`;
    const sel = this.selection.size;
    if (this.selectable) {
      let hidden = 0;
      if (sel) {
        const inView = new Set(this.view);
        for (const k of this.selection) if (!inView.has(this.byKey.get(k))) hidden++;
      }
      this.selInfo.textContent = sel ? ` · ${sel.toLocaleString('en-US')} selected${hidden ? ` (${hidden} hidden by the search)` : ''}` : '';
      this.clearBtn.hidden = !sel;
      const shownSel = sel - hidden;
      this.all.checked = shown > 0 && shownSel === this.view.filter(i => this.canSelect(this.rows[i])).length && shownSel > 0;
      this.all.indeterminate = shownSel > 0 && !this.all.checked;
    }
  }

  /** flash highlights the row with key k and scrolls it into view. */
  flash(k) {
    this.flashKey = k;
    const vi = this.view.indexOf(this.byKey.get(k));
    if (vi >= 0) {
      const y = this.body.offsetTop + vi * this.rowHeight;
      const { scrollTop, clientHeight } = this.scroller;
      if (y < scrollTop + this.head.offsetHeight || y + this.rowHeight > scrollTop + clientHeight) {
        this.scroller.scrollTop = y - clientHeight / 3;
      }
    }
    this.render();
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => { this.flashKey = null; this.render(); }, 2500);
  }

  /** atBottom reports whether the view is scrolled to its end (for log tails). */
  atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < this.rowHeight * 1.5;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.render();
  }
}
