// Requests (Mozpool): open (optionally closed) requests with their
// devices and, while they wait, their place in the queue and ETA; new
// requests (with priority and group), close and renew.

import { get, post, enc, parseTime, formatTime, relative } from '../api.js';
import { h, esc, options, stateBadge, tabs } from '../dom.js';
import { VirtualTable } from '../table.js';
import { bootConfigFields, link, note } from '../forms.js';
import * as stores from '../stores.js';
import { pageShell, countLabel } from './common.js';

const DURATIONS = [['1800', '30 minutes'], ['3600', '1 hour'], ['7200', '2 hours'], ['14400', '4 hours'], ['28800', '8 hours'], ['86400', '1 day'], ['604800', '1 week']];

export function create(ctx) {
  const table = new VirtualTable({
    label: 'requests',
    key: r => String(r.id),
    sort: { id: 'id', dir: -1 },
    canSelect: r => r.state !== 'closed',
    columns: [
      { id: 'id', title: 'ID', width: '5rem', text: r => String(r.id), sortKey: r => r.id, html: r => `<span class="mono">${r.id}</span>` },
      { id: 'requested', title: 'Requested device', width: 'minmax(8rem, 1fr)', text: r => r.requested_device,
        html: r => r.requested_device === 'any' ? '<span class="sub">any</span>' : link(`/log?device=${enc(r.requested_device)}`, r.requested_device) },
      { id: 'assigned', title: 'Assigned device', width: 'minmax(14rem, 1.6fr)', text: r => `${r.assigned_device} ${r.device_state}`,
        html: r => r.assigned_device ? `${link(`/log?device=${enc(r.assigned_device)}`, r.assigned_device)} ${stateBadge(r.device_state)}` : '<span class="sub">–</span>' },
      { id: 'assignee', title: 'Assignee', width: 'minmax(7rem, 1fr)', text: r => r.assignee, html: r => esc(r.assignee) },
      { id: 'state', title: 'State', width: 'minmax(10rem, 1fr)', text: r => r.state, html: r => stateBadge(r.state) },
      { id: 'position', title: 'Queue', width: 'minmax(6rem, 0.7fr)', text: r => r._q ? `${r._q.queue_position}/${r._q.queue_length}` : '',
        sortKey: r => r._q ? r._q.queue_position : Infinity,
        html: r => r._q ? `<span class="mono">${r._q.queue_position}/${r._q.queue_length}</span>${r._q.aged ? ' <span class="sub">aged</span>' : ''}` : '<span class="sub">–</span>' },
      { id: 'eta', title: 'ETA (UTC)', width: 'minmax(12rem, 1fr)', text: r => r._q && r._q.eta ? r._q.eta : '', sortKey: r => r._eta || Infinity,
        html: r => r._eta ? `<span class="mono">${formatTime(r._eta)}</span> <span class="sub">${relative(r._eta)}</span>` : '<span class="sub">–</span>' },
      { id: 'group', title: 'Group / priority', width: 'minmax(9rem, 1fr)', text: r => r._q ? `${r._q.group} ${r._q.priority}` : '',
        html: r => r._q ? `${esc(r._q.group)} <span class="sub">${r._q.priority}</span>` : '<span class="sub">–</span>' },
      { id: 'expires', title: 'Expires (UTC)', width: 'minmax(14rem, 1.2fr)', text: r => r.expires, sortKey: r => r._expires,
        html: r => `<span class="mono">${formatTime(r._expires)}</span> <span class="sub">${relative(r._expires)}</span>` },
      { id: 'server', title: 'Server', width: 'minmax(9rem, 1fr)', text: r => r.imaging_server, html: r => esc(r.imaging_server) },
      { id: 'links', title: 'Links', width: '4rem', text: () => '', sortKey: () => 0, html: r => link(`/log?request=${r.id}`, 'log') },
    ],
    onSelect: () => updateButtons(),
  });

  const withClosed = h('input', { type: 'checkbox', onchange: () => { shownText = ''; ctx.refreshSoon(); } });

  // New request.
  const device = h('input', { type: 'text', list: 'device-names', value: 'any', 'aria-label': 'device', size: 16, name: 'device' });
  const deviceList = h('datalist', { id: 'device-names' });
  const env = h('select', { 'aria-label': 'environment', name: 'environment' });
  const image = h('select', { 'aria-label': 'image', name: 'image' });
  const boot = bootConfigFields();
  const duration = h('select', { 'aria-label': 'duration', name: 'duration' });
  options(duration, DURATIONS);
  duration.value = '3600';
  const assignee = h('input', { type: 'text', placeholder: 'your name', 'aria-label': 'assignee', size: 14, name: 'assignee', value: localStorage.getItem('mozpool.assignee') || '' });
  const priority = h('input', { type: 'number', min: -100, max: 100, value: 0, 'aria-label': 'priority', name: 'priority', style: 'width: 5rem' });
  const group = h('input', { type: 'text', placeholder: 'assignee', 'aria-label': 'group', size: 10, name: 'group' });
  const createBtn = h('button.primary', { type: 'submit' }, 'Request');
  const form = h('form.panel', { onsubmit: e => { e.preventDefault(); doCreate(); } },
    h('label.field', h('span', 'device'), device), deviceList,
    h('label.field', h('span', 'environment'), env),
    h('label.field', h('span', 'image'), image),
    boot.el,
    h('label.field', h('span', 'for'), duration),
    h('label.field', h('span', 'assignee'), assignee),
    h('label.field', h('span', 'priority'), priority),
    h('label.field', h('span', 'group'), group),
    createBtn);
  form.addEventListener('input', updateButtons);
  image.addEventListener('change', () => { syncBootFields(); updateButtons(); });
  let imageList = [];
  function syncBootFields() {
    const img = imageList.find(i => i.name === image.value);
    boot.setKeys(img ? img.boot_config_keys : []);
  }

  const closeBtn = h('button.primary', { type: 'button', onclick: doClose });
  const closePanel = h('div.panel', closeBtn, note('Closing a request releases its device.'));
  const renewFor = h('select', { 'aria-label': 'renew for' });
  options(renewFor, DURATIONS);
  renewFor.value = '3600';
  const renewBtn = h('button.primary', { type: 'button', onclick: doRenew });
  const renewPanel = h('div.panel', h('label.field', h('span', 'expire in'), renewFor), renewBtn,
    note('Renewing sets the time left from now; it does not add to it.'));

  const { el, search } = pageShell({ id: 'requests', title: 'Requests', table, searchHint: 'id, device, assignee, state',
    extras: [h('label.check', withClosed, 'include closed')],
    actions: h('div', { dataset: { needs: 'user' } }, tabs([['New request', form], ['Close', closePanel], ['Renew', renewPanel]])) });

  function updateButtons() {
    const n = table.selected().length;
    closeBtn.textContent = `Close ${countLabel(n, 'request')}`;
    closeBtn.disabled = n === 0;
    renewBtn.textContent = `Renew ${countLabel(n, 'request')}`;
    renewBtn.disabled = n === 0;
    createBtn.disabled = !device.value.trim() || !image.value || !assignee.value.trim() || !boot.complete();
  }

  function doCreate() {
    const dev = device.value.trim();
    const body = { assignee: assignee.value.trim(), duration: Number(duration.value), image: image.value, environment: env.value, ...boot.values() };
    if (Number(priority.value)) body.priority = Number(priority.value);
    if (group.value.trim()) body.group = group.value.trim();
    localStorage.setItem('mozpool.assignee', body.assignee);
    boot.remember();
    ctx.jobs.add(`new request: ${dev}, ${body.image}, for ${body.assignee}`, async () => {
      const { request: r } = await post(`device/${enc(dev)}/request/`, body);
      pendingFlash = String(r.id);
      return `request ${r.id}${r.assigned_device ? ' → ' + r.assigned_device : ''}`;
    });
  }

  function doClose() {
    for (const r of table.selected()) {
      ctx.jobs.add(`request ${r.id}: close`, () => post(`request/${r.id}/return/`));
    }
  }

  function doRenew() {
    const secs = Number(renewFor.value);
    for (const r of table.selected()) {
      ctx.jobs.add(`request ${r.id}: renew, expires in ${renewFor.selectedOptions[0].text}`, () => post(`request/${r.id}/renew/`, { duration: secs }));
    }
  }

  let shownText = '', pendingFlash = null, catalogsAt = 0;
  async function refresh() {
    const catalogs = Promise.all([stores.images(), stores.environments(), stores.deviceNames()]).then(([imgs, envs, names]) => {
      imageList = imgs;
      options(image, imgs.map(i => i.name));
      syncBootFields();
      options(env, ['any', ...envs]);
      if (Date.now() - catalogsAt > 25000) {
        catalogsAt = Date.now();
        deviceList.replaceChildren(...['any', ...names].map(n => h('option', { value: n })));
      }
      updateButtons();
    });
    const [{ text, data }, queue] = await Promise.all([
      get(`request/list/${withClosed.checked ? '?include_closed=1' : ''}`, { raw: true }),
      get('queue/', { raw: true }).catch(() => ({ text: '', data: { queue: [] } })),
    ]);
    // Redraw even when unchanged: "expires in" moves on.
    if (text + queue.text !== shownText) {
      shownText = text + queue.text;
      const waiting = new Map(queue.data.queue.map(q => [q.id, q]));
      for (const r of data.requests) {
        r._expires = parseTime(r.expires);
        r._q = waiting.get(r.id);
        r._eta = r._q && r._q.eta ? parseTime(r._q.eta) : null;
      }
      table.setRows(data.requests);
      updateButtons();
    } else {
      table.render();
    }
    if (pendingFlash && table.row(pendingFlash)) {
      table.flash(pendingFlash);
      pendingFlash = null;
    }
    await catalogs;
  }

  function show(params) {
    const dev = params.get('device');
    if (dev) device.value = dev;
    const q = params.get('q');
    if (q != null) { search.value = q; table.search(q); }
  }

  updateButtons();
  return { el, title: 'Requests', show, refresh };
}
