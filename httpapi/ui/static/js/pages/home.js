// Home: the cluster (servers, leader, health, failure tolerance), devices
// by state per rack, requests by state, and the way to the other pages.

import { get, enc } from '../api.js';
import { h, stateClass, plural } from '../dom.js';
import { naturalKey } from '../table.js';

// The order of state groups on the bars: good, busy, idle, attention, bad.
const GROUP_ORDER = { 's-ok': 0, 's-busy': 1, 's-idle': 2, 's-warn': 3, 's-bad': 4, 's-none': 5 };
const byGroup = (a, b) => (GROUP_ORDER[stateClass(a)] - GROUP_ORDER[stateClass(b)]) || (naturalKey(a) < naturalKey(b) ? -1 : 1);

export function create() {
  const version = h('span.sub');
  const cluster = h('div.card-body');
  const racks = h('div.card-body');
  const reqs = h('div.card-body');
  const el = h('section.page.home', { id: 'page-home', hidden: true },
    h('div.page-head', h('h1', 'Overview'), version),
    h('div.cards',
      h('section.card', h('h2', 'Cluster'), cluster),
      h('section.card', h('h2', h('a', { href: '#/requests' }, 'Requests')), reqs),
      h('section.card.wide', h('h2', h('a', { href: '#/devices' }, 'Devices'), ' by rack'), racks)),
    h('nav.links', { 'aria-label': 'pages' },
      h('a', { href: '#/requests' }, h('b', 'Requests'), h('span', 'request a board, close, renew')),
      h('a', { href: '#/devices' }, h('b', 'Devices'), h('span', 'Lifeguard: image, self-test, force state, comments')),
      h('a', { href: '#/hardware' }, h('b', 'Hardware'), h('span', 'BMM: power, PXE boot, environment')),
      h('a', { href: '#/log' }, h('b', 'Log'), h('span', 'a device’s or a request’s log, live'))));

  let versionShown = false;
  async function refresh() {
    const [st, rl] = await Promise.all([get('cluster/status/'), get('request/list/'),
      versionShown ? null : get('version/').then(v => { version.textContent = `version ${v.version}`; versionShown = true; })]);
    renderCluster(st);
    renderRacks(st);
    renderRequests(rl.requests);
  }

  function renderCluster(st) {
    const leader = st.leader ? st.leader.name || st.leader.id : null;
    const tol = st.failure_tolerance;
    const servers = [...st.servers].sort((a, b) => naturalKey(a.name || a.id) < naturalKey(b.name || b.id) ? -1 : 1);
    cluster.replaceChildren(
      h('dl.facts',
        h('dt', 'this node'), h('dd', `${st.node.name || st.node.id} (${st.state.toLowerCase()})`),
        h('dt', 'leader'), h('dd', leader ? leader : h('span.bad', 'none: writes wait')),
        h('dt', 'failure tolerance'), h('dd', { class: tol > 0 ? 'ok' : 'warn' },
          tol > 0 ? `${plural(tol, 'server')} may fail` : 'none: one more failure stops writes'),
        h('dt', 'raft'), h('dd.mono', `term ${st.term} · commit ${st.commit_index} · applied ${st.applied_index}`)),
      h('div.scroll-x', h('table.mini',
        h('thead', h('tr', ...['server', 'rack', 'role', 'health', 'gossip', 'last contact'].map(t => h('th', t)))),
        h('tbody', ...servers.map(s => h('tr',
          h('td', s.http_addr ? h('a', { href: s.http_addr.replace(/\/$/, '') + '/ui/', title: 'this server’s UI' }, s.name || s.id) : (s.name || s.id)),
          h('td', s.rack || ''),
          h('td', s.leader ? h('b', 'leader') : s.suffrage.toLowerCase()),
          h('td', h('span.badge', { class: s.healthy ? 's-ok' : 's-bad' }, s.healthy ? 'healthy' : 'unhealthy')),
          h('td', s.gossip),
          h('td.mono', s.last_contact_ms == null ? '' : `${s.last_contact_ms} ms`)))))));
  }

  function renderRacks(st) {
    const all = new Set();
    for (const counts of Object.values(st.devices_by_rack)) for (const s of Object.keys(counts)) all.add(s);
    const states = [...all].sort(byGroup);
    const rackNames = Object.keys(st.devices_by_rack).sort((a, b) => naturalKey(a) < naturalKey(b) ? -1 : 1);
    if (!rackNames.length) {
      racks.replaceChildren(h('p.sub', 'No devices yet: sync an inventory (mozpoolctl inventory sync).'));
      return;
    }
    const total = Object.fromEntries(states.map(s => [s, 0]));
    const rows = rackNames.map(rack => {
      const c = st.devices_by_rack[rack];
      const n = Object.values(c).reduce((a, b) => a + b, 0);
      for (const s of states) total[s] += c[s] || 0;
      return h('tr',
        h('th', rack || '(no rack)'),
        h('td.bar-cell', bar(c, states, n)),
        ...states.map(s => h('td.num', c[s] ? h('a', { href: `#/devices?state=${enc(s)}`, class: stateClass(s) + '-text' }, String(c[s])) : '')),
        h('td.num', h('b', n.toLocaleString('en-US'))));
    });
    const grand = Object.values(total).reduce((a, b) => a + b, 0);
    racks.replaceChildren(h('div.scroll-x', h('table.mini.racks',
      h('thead', h('tr', h('th', 'rack'), h('th', ''), ...states.map(s => h('th.num', h('span.badge', { class: stateClass(s) }, s))), h('th.num', 'total'))),
      h('tbody', ...rows),
      rackNames.length > 1 ? h('tfoot', h('tr', h('th', 'all'), h('td.bar-cell', bar(total, states, grand)),
        ...states.map(s => h('td.num', total[s] ? h('a', { href: `#/devices?state=${enc(s)}` }, String(total[s])) : '')),
        h('td.num', h('b', grand.toLocaleString('en-US'))))) : null)));
  }

  function renderRequests(list) {
    const counts = {};
    for (const r of list) counts[r.state] = (counts[r.state] || 0) + 1;
    const states = Object.keys(counts).sort(byGroup);
    reqs.replaceChildren(
      h('p.big', h('b', String(list.length)), list.length === 1 ? ' open request' : ' open requests'),
      states.length ? h('div.chips', ...states.map(s => h('a.chip', { href: `#/requests?q=${enc(s)}`, class: stateClass(s) }, s, h('b', String(counts[s])))))
        : h('p.sub', 'Nobody holds a device.'));
  }

  return { el, title: 'Home', show() {}, refresh };
}

/** bar draws the share of each state as a stacked bar. */
function bar(counts, states, n) {
  const wrap = h('div.bar', { role: 'img', 'aria-label': states.filter(s => counts[s]).map(s => `${counts[s]} ${s}`).join(', ') });
  if (!n) return wrap;
  for (const s of states) {
    if (!counts[s]) continue;
    wrap.append(h('span', { class: stateClass(s), style: `flex-grow: ${counts[s]}`, title: `${s}: ${counts[s]}` }));
  }
  return wrap;
}
