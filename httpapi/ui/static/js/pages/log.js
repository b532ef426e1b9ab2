// Log: the log of one or more devices and requests, merged on one UTC time
// line, tailed live. Lines can be filtered by source (statemachine, bmm,
// sut, api, device, …), by time range and by text.

import { get, enc, parseTime, formatTime, now } from '../api.js';
import { h, esc } from '../dom.js';
import { VirtualTable } from '../table.js';
import * as stores from '../stores.js';
import { pageShell } from './common.js';

const FIRST_LINES = 1000;
const RANGES = [['all', 'all time'], ['300', 'last 5 min'], ['900', 'last 15 min'], ['3600', 'last hour'], ['21600', 'last 6 hours'], ['86400', 'last day'], ['custom', 'from … to …']];
const KNOWN_SOURCES = ['statemachine', 'bmm', 'sut', 'api', 'device', 'mozpool', 'lifeguard', 'inventory'];

/** sourceClass gives each source its own colour; unknown ones share one. */
const sourceClass = s => 'src-' + (KNOWN_SOURCES.includes(s) ? s : 'other');

/** Subject is one log: a device's or a request's. */
class Subject {
  constructor(kind, name) {
    this.kind = kind; // "device" or "request"
    this.name = name;
    this.label = kind === 'device' ? name : `request ${name}`;
    this.entries = new Map(); // id → entry
    this.lastOk = 0;
    this.error = '';
    this.assigned = '';
  }

  get path() { return `${this.kind}/${enc(this.name)}/log/`; }

  /** fetch reads the first lines, then only recent ones (merged by id). */
  async fetch() {
    let q = '';
    if (this.kind === 'device') {
      const since = (Date.now() - this.lastOk) / 1000;
      q = this.lastOk && since < 3000 ? `?timeperiod=${Math.ceil(since) + 60}` : `?limit=${FIRST_LINES}`;
    }
    const started = Date.now();
    try {
      const { log } = await get(this.path + q);
      for (const e of log) {
        if (!this.entries.has(e.id)) {
          e._t = parseTime(e.timestamp);
          e._subject = this.label;
          e._key = `${this.label}\u0001${String(e.id).padStart(12, '0')}`;
          this.entries.set(e.id, e);
        }
      }
      this.lastOk = started;
      this.error = '';
      if (this.kind === 'request' && !this.assigned) {
        const d = await get(`request/${enc(this.name)}/details/`).catch(() => null);
        if (d && d.assigned_device) this.assigned = d.assigned_device;
      }
    } catch (e) {
      this.error = String(e);
    }
  }
}

export function create(ctx) {
  let subjects = [];
  const table = new VirtualTable({
    label: 'lines',
    key: e => e._key,
    selectable: false,
    rowHeight: 26,
    sort: { id: 'time', dir: 1 },
    emptyText: 'No log lines yet.',
    columns: [
      { id: 'time', title: 'Time (UTC)', width: '13.5rem', text: e => e.timestamp, sortKey: e => e._t, html: e => `<span class="mono">${formatTime(e._t, true)}</span>` },
      { id: 'subject', title: 'Log', width: 'minmax(7rem, .5fr)', text: e => e._subject, html: e => esc(e._subject) },
      { id: 'source', title: 'Source', width: '9.5rem', text: e => e.source, html: e => `<span class="src ${sourceClass(e.source)}">${esc(e.source)}</span>` },
      { id: 'message', title: 'Message', width: 'minmax(20rem, 5fr)', cls: 'msg', text: e => e.message, html: e => esc(e.message), tip: e => e.message },
    ],
    onRowClick: e => showDetail(e),
  });

  // Which logs: chips of the subjects, and a box to add one.
  const subjectChips = h('div.chips.subjects');
  const pick = h('input', { type: 'text', list: 'log-device-names', placeholder: 'device name or request id', 'aria-label': 'device name or request id', size: 24 });
  const pickList = h('datalist', { id: 'log-device-names' });
  const pickForm = h('form.inline', { onsubmit: e => { e.preventDefault(); addSubject(pick.value.trim()); pick.value = ''; } },
    pick, pickList, h('button', { type: 'submit' }, 'Show'));

  // Filters.
  const sourceChips = h('div.chips', { role: 'group', 'aria-label': 'sources' });
  const hiddenSources = new Set();
  sourceChips.addEventListener('click', e => {
    const b = e.target.closest('button');
    if (!b) return;
    const s = b.dataset.source;
    if (e.shiftKey || e.ctrlKey || e.metaKey) {
      // Only this source (or all again).
      const others = [...seenSources()].filter(x => x !== s);
      const only = others.every(x => hiddenSources.has(x)) && !hiddenSources.has(s);
      hiddenSources.clear();
      if (!only) for (const x of others) hiddenSources.add(x);
    } else if (hiddenSources.has(s)) hiddenSources.delete(s);
    else hiddenSources.add(s);
    applyFilter();
  });
  const range = h('select', { 'aria-label': 'time range' });
  for (const [v, l] of RANGES) range.append(h('option', { value: v }, l));
  const from = h('input', { type: 'datetime-local', step: 1, 'aria-label': 'from (UTC)' });
  const to = h('input', { type: 'datetime-local', step: 1, 'aria-label': 'to (UTC)' });
  const custom = h('span.inline', from, '–', to, h('span.sub', 'UTC'));
  for (const x of [range, from, to]) x.addEventListener('change', applyFilter);
  const follow = h('input', { type: 'checkbox', checked: true });
  const detail = h('div.log-detail', { hidden: true });

  const filters = h('div.filters', h('span.sub', 'sources'), sourceChips, h('span.spacer'),
    h('label.field', h('span', 'time'), range), custom,
    h('label.check', { title: 'keep the newest line in view' }, follow, 'follow'));
  const { el, search } = pageShell({ id: 'log', title: 'Log', table, searchHint: 'search messages',
    extras: [subjectChips, pickForm], actions: filters });
  el.classList.add('log-page');
  el.append(detail);

  function seenSources() {
    const out = new Set();
    for (const s of subjects) for (const e of s.entries.values()) out.add(e.source);
    return out;
  }

  function applyFilter() {
    custom.hidden = range.value !== 'custom';
    let lo = -Infinity, hi = Infinity;
    if (range.value === 'custom') {
      if (from.value) lo = Date.parse(from.value + 'Z');
      if (to.value) hi = Date.parse(to.value + 'Z');
    } else if (range.value !== 'all') {
      lo = now() - Number(range.value) * 1000;
    }
    const hideSrc = hiddenSources.size > 0;
    table.setFilter(hideSrc || lo > -Infinity || hi < Infinity
      ? e => !(hideSrc && hiddenSources.has(e.source)) && e._t >= lo && e._t <= hi : null);
    renderSourceChips();
  }

  function renderSourceChips() {
    const counts = new Map();
    for (const s of subjects) for (const e of s.entries.values()) counts.set(e.source, (counts.get(e.source) || 0) + 1);
    const names = [...counts.keys()].sort((a, b) => {
      const ia = KNOWN_SOURCES.indexOf(a), ib = KNOWN_SOURCES.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : 1);
    });
    sourceChips.replaceChildren(...(names.length ? names.map(s => h('button.chip.src-chip', {
      type: 'button', class: sourceClass(s), dataset: { source: s }, 'aria-pressed': String(!hiddenSources.has(s)),
      title: 'click: hide or show; shift-click: only this source',
    }, s, h('b', counts.get(s).toLocaleString('en-US')))) : [h('span.sub', 'none yet')]));
  }

  function renderSubjects() {
    subjectChips.replaceChildren(...subjects.map(s => h('span.chip.subject', { class: s.error ? 's-bad' : '', title: s.error || '' },
      s.kind === 'device' ? h('a', { href: `#/devices?q=${enc(s.name)}` }, s.label) : s.label,
      s.error ? h('span.err', ` ${s.error}`) : null,
      s.assigned && !subjects.some(x => x.kind === 'device' && x.name === s.assigned)
        ? h('button.link', { type: 'button', onclick: () => addSubject(s.assigned), title: 'merge its device’s log' }, `+ ${s.assigned}`) : null,
      h('button.icon', { type: 'button', 'aria-label': `stop showing ${s.label}`, onclick: () => removeSubject(s) }, '×'))));
    table.hideColumns(subjects.length < 2 ? ['subject'] : []);
  }

  /** addSubject adds "panda-0001" (a device) or "17" (a request). */
  function addSubject(text) {
    if (!text) return;
    const kind = /^\d+$/.test(text) ? 'request' : 'device';
    setHash([...subjects.map(s => [s.kind, s.name]), [kind, text]]);
  }
  function removeSubject(s) {
    setHash(subjects.filter(x => x !== s).map(x => [x.kind, x.name]));
  }
  function setHash(pairs) {
    const q = new URLSearchParams();
    for (const [k, n] of pairs) q.append(k, n);
    ctx.go(`/log${pairs.length ? '?' + q : ''}`);
  }

  function showDetail(e) {
    detail.hidden = false;
    detail.replaceChildren(
      h('div.log-detail-head', h('span.mono', formatTime(e._t, true)), ' ', h('span.src', { class: sourceClass(e.source) }, e.source), ' ', h('span.sub', e._subject),
        h('span.spacer'), h('button.icon', { type: 'button', 'aria-label': 'close', onclick: () => { detail.hidden = true; } }, '×')),
      h('pre', e.message));
  }

  /** mergeRows puts the lines of every subject shown on the table. */
  let merged = -1;
  function mergeRows() {
    const rows = [];
    for (const s of subjects) for (const e of s.entries.values()) rows.push(e);
    merged = rows.length;
    table.setRows(rows);
    applyFilter();
  }

  async function refresh() {
    if (!subjects.length) {
      stores.deviceNames().then(names => {
        if (pickList.childElementCount !== names.length) pickList.replaceChildren(...names.map(n => h('option', { value: n })));
      }).catch(() => {});
      return;
    }
    const wasAtBottom = table.atBottom();
    const mine = subjects;
    await Promise.all(mine.map(s => s.fetch()));
    if (mine !== subjects) return; // the page moved on meanwhile
    const total = mine.reduce((n, s) => n + s.entries.size, 0);
    table.emptyText = 'No log lines yet.';
    renderSubjects();
    if (total !== merged) {
      mergeRows();
      if (follow.checked && (wasAtBottom || !table.rendered)) {
        table.scrollToBottom();
        table.rendered = true;
      }
    } else if (range.value !== 'all' && range.value !== 'custom') {
      applyFilter(); // the window moves with the clock
    }
  }

  function show(params) {
    const want = [...params.getAll('device').map(n => ['device', n]), ...params.getAll('request').map(n => ['request', n])];
    const same = want.length === subjects.length && want.every(([k, n], i) => subjects[i].kind === k && subjects[i].name === n);
    if (same) return;
    // Keep what was already read for subjects still shown.
    const old = new Map(subjects.map(s => [`${s.kind}:${s.name}`, s]));
    subjects = want.map(([k, n]) => old.get(`${k}:${n}`) || new Subject(k, n));
    table.rendered = false;
    table.emptyText = subjects.length ? 'Loading…' : 'Choose a device (by name) or a request (by id) above to see its log.';
    detail.hidden = true;
    el.querySelector('h1').textContent = subjects.length ? `Log of ${subjects.map(s => s.label).join(' + ')}` : 'Log';
    renderSubjects();
    mergeRows(); // no lines of subjects no longer shown, not even for a moment
    const q = params.get('q');
    if (q != null) { search.value = q; table.search(q); }
  }

  applyFilter();
  return { el, title: 'Log', show, refresh };
}
