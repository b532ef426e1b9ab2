// Devices (Lifeguard): every device's state, image and comments; please_*
// events, forced state changes and comments on the selected devices.

import { post, enc } from '../api.js';
import { h, esc, options, stateBadge, stateClass, tabs } from '../dom.js';
import { VirtualTable, naturalKey } from '../table.js';
import { bootConfigFields, confirmMany, link, note } from '../forms.js';
import * as stores from '../stores.js';
import { pageShell, countLabel } from './common.js';

const VERBS = [
  ['please_image', 'image'],
  ['please_power_cycle', 'power cycle'],
  ['please_self_test', 'self test'],
  ['please_start_maintenance', 'start maintenance'],
];

/** bootConfigMark is † when a boot config is a non-empty JSON object. */
function bootConfigMark(bc) {
  if (!bc || bc === '{}') return false;
  try {
    const v = JSON.parse(bc);
    return v !== null && typeof v === 'object' && Object.keys(v).length > 0;
  } catch {
    return true;
  }
}

export function create(ctx) {
  const table = new VirtualTable({
    label: 'devices',
    key: d => d.name,
    columns: [
      { id: 'name', title: 'Name', width: 'minmax(9rem, 1.1fr)', text: d => d.name, html: d => `<span class="mono">${esc(d.name)}</span>` },
      { id: 'state', title: 'State', width: 'minmax(13rem, 1.4fr)', text: d => d.state + (d.request_id ? ` request ${d.request_id}` : ''),
        sortKey: d => naturalKey(d.state),
        html: d => stateBadge(d.state) + (d.relay_suspect ? ' <span class="warn" title="its relay board is suspected of a shared fault">relay suspect</span>' : '') +
          (d.tftp_suspect ? ' <span class="warn" title="its imaging server\'s PXE/TFTP is suspected of a shared fault">TFTP suspect</span>' : '') +
          (d.request_id ? ' ' + link(`/log?request=${d.request_id}`, `request ${d.request_id}`, 'sub') : '') },
      { id: 'image', title: 'Image', width: 'minmax(7rem, .8fr)', text: d => d.image || '',
        html: d => esc(d.image || '') + (bootConfigMark(d.boot_config) ? ' <span class="dagger">†</span>' : ''),
        tip: d => d.boot_config || '' },
      { id: 'health', title: 'Health', width: '5rem', text: d => String(d.health_score ?? ''),
        sortKey: d => d.health_score ?? 100,
        html: d => d.health_score == null ? '' : `<span class="${d.health_score < 50 ? 'bad' : d.health_score < 80 ? 'warn' : 'ok'}">${d.health_score}</span>`,
        tip: () => 'health score: share of successful operations in the recent history (device details show it)' },
      { id: 'server', title: 'Server', width: 'minmax(9rem, 1fr)', text: d => d.imaging_server, html: d => esc(d.imaging_server) },
      { id: 'environment', title: 'Environment', width: 'minmax(6rem, .7fr)', text: d => d.environment || '', html: d => esc(d.environment || '') },
      { id: 'comments', title: 'Comments', width: 'minmax(10rem, 2fr)', text: d => d.comments || '', html: d => esc(d.comments || ''), tip: d => d.comments || '' },
      { id: 'links', title: 'Links', width: '4rem', text: () => '', sortKey: () => 0, html: d => link(`/log?device=${enc(d.name)}`, 'log') },
    ],
    onSelect: () => updateButtons(),
    onRender: () => markFirstPaint(),
  });

  // State chips: counts by state; a click filters to that state.
  const chips = h('div.chips', { role: 'group', 'aria-label': 'filter by state' });
  const stateFilter = new Set();
  chips.addEventListener('click', e => {
    const b = e.target.closest('button');
    if (!b) return;
    const s = b.dataset.state;
    if (!s) stateFilter.clear();
    else if (e.ctrlKey || e.metaKey || e.shiftKey) { if (stateFilter.has(s)) stateFilter.delete(s); else stateFilter.add(s); }
    else if (stateFilter.size === 1 && stateFilter.has(s)) stateFilter.clear();
    else { stateFilter.clear(); stateFilter.add(s); }
    applyStateFilter();
  });
  function applyStateFilter() {
    table.setFilter(stateFilter.size ? d => stateFilter.has(d.state) : null);
    renderChips();
  }
  function renderChips() {
    const counts = new Map();
    for (const d of stores.devices.list) counts.set(d.state, (counts.get(d.state) || 0) + 1);
    const sorted = [...counts].sort((a, b) => naturalKey(a[0]) < naturalKey(b[0]) ? -1 : 1);
    chips.replaceChildren(
      h('button.chip', { type: 'button', 'aria-pressed': String(stateFilter.size === 0) }, `all ${stores.devices.list.length.toLocaleString('en-US')}`),
      ...sorted.map(([s, n]) => h('button.chip', { type: 'button', class: stateClass(s), dataset: { state: s }, 'aria-pressed': String(stateFilter.has(s)), title: 'click: only this state; ctrl/shift-click: add it' },
        s, h('b', n.toLocaleString('en-US')))));
  }

  // Please…
  const verb = h('select', { 'aria-label': 'event' });
  options(verb, VERBS);
  const image = h('select', { 'aria-label': 'image' });
  const boot = bootConfigFields();
  const imageBox = h('span.inline', h('label.field', h('span', 'image'), image), boot.el);
  const pleaseBtn = h('button.primary', { type: 'button', onclick: doPlease });
  let imageList = [];
  verb.addEventListener('change', updateButtons);
  image.addEventListener('change', () => { syncBootFields(); updateButtons(); });
  boot.el.addEventListener('input', updateButtons);
  function syncBootFields() {
    const img = imageList.find(i => i.name === image.value);
    boot.setKeys(img ? img.boot_config_keys : []);
  }
  const pleasePanel = h('div.panel', h('label.field', h('span', 'please'), verb), imageBox, pleaseBtn);

  // Force state.
  const forceTo = h('input', { type: 'text', list: 'lifeguard-states', placeholder: 'new state', 'aria-label': 'new state', size: 18 });
  const statesList = h('datalist', { id: 'lifeguard-states' });
  const forceBtn = h('button.primary', { type: 'button', onclick: doForce });
  forceTo.addEventListener('input', updateButtons);
  const forcePanel = h('div.panel', h('label.field', h('span', 'force to'), forceTo), statesList, forceBtn,
    note('Each device must still be in the state shown, or the change is refused.'));

  // Comments.
  const comments = h('input', { type: 'text', placeholder: 'comments (empty clears them)', 'aria-label': 'comments', size: 40 });
  const commentsBtn = h('button.primary', { type: 'button', onclick: doComments });
  const commentsPanel = h('div.panel', comments, commentsBtn);

  const actions = h('div.actions-wrap', { dataset: { needs: 'operator' } });
  const { el, search } = pageShell({ id: 'devices', title: 'Devices', table, extras: [chips], actions, searchHint: 'name, state, image, server, comments' });
  actions.append(tabs([['Please…', pleasePanel], ['Force state', forcePanel], ['Comments', commentsPanel]]));

  function updateButtons() {
    const n = table.selected().length;
    const isImage = verb.value === 'please_image';
    imageBox.hidden = !isImage;
    pleaseBtn.textContent = `Send to ${countLabel(n, 'device')}`;
    pleaseBtn.disabled = n === 0 || (isImage && (!image.value || !boot.complete()));
    forceBtn.textContent = `Force ${countLabel(n, 'device')}`;
    forceBtn.disabled = n === 0 || !forceTo.value.trim();
    commentsBtn.textContent = `Set comments of ${countLabel(n, 'device')}`;
    commentsBtn.disabled = n === 0;
  }

  let stateTable = new Map();
  function doPlease() {
    const rows = table.selected();
    const v = verb.value;
    if (!rows.length || !confirmMany(rows.length, v)) return;
    let body = {};
    if (v === 'please_image') {
      body = { image: image.value, boot_config: JSON.stringify(boot.values()) };
      boot.remember();
    }
    for (const d of rows) {
      const shown = d.state;
      ctx.jobs.add(`${d.name}: ${v}${v === 'please_image' ? ' ' + image.value : ''}`, async () => {
        await post(`device/${enc(d.name)}/event/${v}/`, body);
        const st = stateTable.get(shown);
        return st && !st.accepts_please.includes(v) ? `sent, but ${shown} ignores ${v}` : 'sent';
      });
    }
  }

  function doForce() {
    const rows = table.selected();
    const to = forceTo.value.trim();
    if (!rows.length || !to || !confirmMany(rows.length, `force state ${to}`)) return;
    for (const d of rows) {
      const shown = d.state; // the state on screen is the expected one
      ctx.jobs.add(`${d.name}: force ${shown} → ${to}`, async () => {
        await post(`device/${enc(d.name)}/state-change/${enc(shown)}/to/${enc(to)}/`);
        return `now ${to}`;
      });
    }
  }

  function doComments() {
    const rows = table.selected();
    const text = comments.value;
    if (!rows.length || !confirmMany(rows.length, 'set comments')) return;
    for (const d of rows) {
      ctx.jobs.add(`${d.name}: comments “${text}”`, () => post(`device/${enc(d.name)}/set-comments/`, { comments: text }));
    }
  }

  let shownVersion = -1;
  async function refresh({ force = false } = {}) {
    const catalogs = Promise.all([stores.images(), stores.states()]).then(([imgs, sts]) => {
      imageList = imgs;
      options(image, imgs.map(i => i.name));
      syncBootFields();
      stateTable = new Map(sts.map(s => [s.name, s]));
      statesList.replaceChildren(...sts.map(s => h('option', { value: s.name })));
      updateButtons();
    });
    await stores.devices.refresh(force);
    if (stores.devices.version !== shownVersion) {
      shownVersion = stores.devices.version;
      const t0 = performance.now();
      table.setRows(stores.devices.list);
      renderChips();
      updateButtons();
      // What one changed list costs to sort, filter and draw.
      performance.measure('mozpool:devices-table', { start: t0 });
    }
    await catalogs;
  }

  function show(params) {
    const st = params.get('state');
    if (st) { stateFilter.clear(); stateFilter.add(st); applyStateFilter(); }
    const q = params.get('q');
    if (q != null) { search.value = q; table.search(q); }
  }

  updateButtons();
  return { el, title: 'Devices', show, refresh };
}

/** markFirstPaint records, once per page load, when the first rows were painted (for the browser test). */
function markFirstPaint() {
  if (window.__firstTablePaint !== undefined || markFirstPaint.pending) return;
  markFirstPaint.pending = true;
  // The frame after this one has painted the rows.
  requestAnimationFrame(() => setTimeout(() => { window.__firstTablePaint = performance.now(); }, 0));
}
