// Hardware (BMM): where each device is wired; power control, PXE boots,
// environments and comments on the selected devices. Hardware calls go to
// this node, which proxies them to the device's imaging server.

import { get, post, enc } from '../api.js';
import { h, esc, options, tabs } from '../dom.js';
import { VirtualTable } from '../table.js';
import { confirmMany, link, note } from '../forms.js';
import * as stores from '../stores.js';
import { pageShell, countLabel } from './common.js';

/** mac renders 12 hex digits as aa:bb:cc:dd:ee:ff. */
const mac = m => (m || '').replace(/(..)(?!$)/g, '$1:');

export function create(ctx) {
  const table = new VirtualTable({
    label: 'devices',
    key: d => d.name,
    columns: [
      { id: 'fqdn', title: 'FQDN', width: 'minmax(12rem, 1.5fr)', text: d => d.fqdn + ' ' + d.name,
        html: d => `<span class="mono">${esc(d.fqdn)}</span>${d.fqdn.startsWith(d.name + '.') ? '' : ` <span class="sub">(${esc(d.name)})</span>`}` },
      { id: 'mac', title: 'MAC', width: '11.5rem', text: d => mac(d.mac_address), html: d => `<span class="mono">${esc(mac(d.mac_address))}</span>` },
      { id: 'server', title: 'Imaging server', width: 'minmax(9rem, 1fr)', text: d => d.imaging_server, html: d => esc(d.imaging_server) },
      { id: 'relay', title: 'Relay', width: 'minmax(12rem, 1.4fr)', text: d => d.relay_info || '', html: d => `<span class="mono">${esc(d.relay_info || '')}</span>` },
      { id: 'environment', title: 'Environment', width: 'minmax(6rem, .7fr)', text: d => d.environment || '', html: d => esc(d.environment || '') },
      { id: 'comments', title: 'Comments', width: 'minmax(10rem, 1.6fr)', text: d => d.comments || '', html: d => esc(d.comments || ''), tip: d => d.comments || '' },
      { id: 'links', title: 'Links', width: '4rem', text: () => '', sortKey: () => 0, html: d => link(`/log?device=${enc(d.name)}`, 'log') },
    ],
    onSelect: () => updateButtons(),
  });

  const cycleBtn = h('button.primary', { type: 'button', dataset: { needs: 'operator' }, onclick: () => each('power cycle', d => post(`device/${enc(d.name)}/power-cycle/`, {})) });
  const offBtn = h('button', { type: 'button', dataset: { needs: 'operator' }, onclick: () => each('power off', d => get(`device/${enc(d.name)}/power-off/`)) });
  const pingBtn = h('button', { type: 'button', onclick: () => each('ping', async d => (await get(`device/${enc(d.name)}/ping/`)).success ? 'answers' : 'no answer', true) });
  const powerPanel = h('div.panel', cycleBtn, offBtn, pingBtn,
    note('Power control does not change the Lifeguard state.'));

  const pxe = h('select', { 'aria-label': 'PXE config' });
  const pxeBoot = h('input', { type: 'text', placeholder: 'boot config (JSON), e.g. {"b2gbase": "http://…"}', 'aria-label': 'boot config', size: 44 });
  const pxeBtn = h('button.primary', { type: 'button', onclick: () => each(`PXE boot ${pxe.value}`, d => post(`device/${enc(d.name)}/power-cycle/`, { pxe_config: pxe.value, boot_config: pxeBoot.value })) });
  pxe.addEventListener('change', updateButtons);
  pxeBoot.addEventListener('input', updateButtons);
  const pxePanel = h('div.panel', { dataset: { needs: 'operator' } }, h('label.field', h('span', 'PXE config'), pxe), pxeBoot, pxeBtn);

  const env = h('input', { type: 'text', list: 'environments', placeholder: 'environment', 'aria-label': 'environment', size: 18 });
  const envList = h('datalist', { id: 'environments' });
  const envBtn = h('button.primary', { type: 'button', onclick: () => each(`environment ${env.value}`, d => post(`device/${enc(d.name)}/set-environment/`, { environment: env.value.trim() })) });
  env.addEventListener('input', updateButtons);
  const envPanel = h('div.panel', { dataset: { needs: 'operator' } }, env, envList, envBtn);

  const comments = h('input', { type: 'text', placeholder: 'comments (empty clears them)', 'aria-label': 'comments', size: 40 });
  const commentsBtn = h('button.primary', { type: 'button', onclick: () => each(`comments “${comments.value}”`, d => post(`device/${enc(d.name)}/set-comments/`, { comments: comments.value })) });
  const commentsPanel = h('div.panel', { dataset: { needs: 'operator' } }, comments, commentsBtn);

  const { el, search } = pageShell({ id: 'hardware', title: 'Hardware', table, searchHint: 'fqdn, MAC, server, relay',
    actions: tabs([['Power', powerPanel], ['PXE boot', pxePanel], ['Environment', envPanel], ['Comments', commentsPanel]]) });

  /** each queues one job per selected device. */
  function each(what, fn, quiet = false) {
    const rows = table.selected();
    if (!rows.length || (!quiet && !confirmMany(rows.length, what))) return;
    for (const d of rows) ctx.jobs.add(`${d.name}: ${what}`, () => fn(d));
  }

  function updateButtons() {
    const n = table.selected().length;
    const what = countLabel(n, 'device');
    cycleBtn.textContent = `Power cycle ${what}`;
    offBtn.textContent = 'Power off';
    pingBtn.textContent = 'Ping';
    pxeBtn.textContent = `PXE boot ${what}`;
    envBtn.textContent = `Set environment of ${what}`;
    commentsBtn.textContent = `Set comments of ${what}`;
    for (const b of [cycleBtn, offBtn, pingBtn, commentsBtn]) b.disabled = n === 0;
    pxeBtn.disabled = n === 0 || !pxe.value || !validJSON(pxeBoot.value);
    pxeBoot.classList.toggle('invalid', !validJSON(pxeBoot.value));
    envBtn.disabled = n === 0 || !env.value.trim();
  }

  let shownVersion = -1;
  async function refresh({ force = false } = {}) {
    const catalogs = Promise.all([stores.pxeConfigs(), stores.environments()]).then(([pcs, envs]) => {
      options(pxe, pcs);
      envList.replaceChildren(...envs.map(e => h('option', { value: e })));
      updateButtons();
    });
    await stores.devices.refresh(force);
    if (stores.devices.version !== shownVersion) {
      shownVersion = stores.devices.version;
      table.setRows(stores.devices.list);
    }
    await catalogs;
  }

  function show(params) {
    const q = params.get('q');
    if (q != null) { search.value = q; table.search(q); }
  }

  updateButtons();
  return { el, title: 'Hardware', show, refresh };
}

/** validJSON: empty, or a JSON value (the board reads the boot config as JSON). */
function validJSON(s) {
  if (!s.trim()) return true;
  try { JSON.parse(s); return true; } catch { return false; }
}
