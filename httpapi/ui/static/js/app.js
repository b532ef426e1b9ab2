// The app shell: hash routes to pages, one poll loop for the page shown
// (driven by the node's event stream while it is open), the job queue, and
// the connection banner. Pages are built on first visit
// and kept, so selection and scroll survive switching between them.

import { server, get, eventsURL, auth, may, token, setToken, whoami } from './api.js';
import { JobQueue } from './jobs.js';
import * as home from './pages/home.js';
import * as requests from './pages/requests.js';
import * as devices from './pages/devices.js';
import * as hardware from './pages/hardware.js';
import * as log from './pages/log.js';

const POLL_MS = 3000;
// While the event stream is open, a change of state refreshes the page (at
// most every EVENT_REFRESH_MS) and the poll, every STREAM_POLL_MS, catches
// what makes no event (comments, renewals). The log page, whose lines are
// not events, keeps polling every POLL_MS.
const EVENT_REFRESH_MS = 500;
const STREAM_POLL_MS = 10000;
const factories = { home, requests, devices, hardware, log };
const pages = {};
const main = document.getElementById('main');
const banner = document.getElementById('banner');
const conn = document.getElementById('conn');

let current = null;

const ctx = {
  jobs: null,
  /** refreshSoon refreshes the page shown after a short pause (several jobs ending together make one refresh). */
  refreshSoon: null,
  go: hash => { location.hash = hash; },
};

ctx.jobs = new JobQueue({ onDone: () => ctx.refreshSoon() });
document.getElementById('jobs-slot').append(ctx.jobs.indicator);
document.body.append(ctx.jobs.panel);

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [name, query] = raw.split('?');
  return { name: factories[name] ? name : 'home', params: new URLSearchParams(query || '') };
}

function route() {
  const { name, params } = parseHash();
  if (!pages[name]) {
    pages[name] = factories[name].create(ctx);
    main.append(pages[name].el);
  }
  if (current && current !== pages[name]) {
    current.el.hidden = true;
    current.hide?.();
  }
  current = pages[name];
  current.el.hidden = false;
  current.show(params);
  document.title = `${current.title} · Mozpool`;
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', a.dataset.page === name);
    if (a.dataset.page === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  refresh(true);
}

// Sign-in: the token is kept in the tab's session storage; what the role
// may not do is hidden (elements marked data-needs="user|operator|admin";
// see style.css).
const signin = document.getElementById('signin');
const tokenBox = document.getElementById('token');
const who = document.getElementById('who');
const signoutBtn = document.getElementById('signout-btn');
const signinBtn = document.getElementById('signin-btn');

function applyRole() {
  for (const r of ['user', 'operator', 'admin']) document.body.dataset['may' + r[0].toUpperCase() + r.slice(1)] = may(r) ? 'yes' : 'no';
  const signedIn = !auth.anonymous;
  who.textContent = signedIn ? `${auth.name} (${auth.role})` : `anonymous · ${auth.policy} policy`;
  tokenBox.hidden = signinBtn.hidden = signedIn;
  signoutBtn.hidden = !signedIn;
}

async function identify() {
  try {
    await whoami();
  } catch (e) {
    if (e.status === 401 && token()) {
      setToken('');
      await whoami().catch(() => {});
      applyRole();
      banner.textContent = 'Sign-in refused: the token is not valid.';
      banner.hidden = false;
      return;
    }
  }
  applyRole();
}

signin.addEventListener('submit', async e => {
  e.preventDefault();
  const t = tokenBox.value.trim();
  if (!t) return;
  setToken(t);
  tokenBox.value = '';
  await identify();
  refresh(true);
});
signoutBtn.addEventListener('click', async () => {
  setToken('');
  await identify();
  refresh(true);
});
applyRole();
identify();

// The header names the node serving the page (its API answers carry only
// the node id).
let nodeName = '';
get('cluster/self/').then(id => { nodeName = id.name || id.id; }).catch(() => {});

let refreshing = null, again = false, againForce = false;

/**
 * refresh runs the shown page's refresh, never two at a time. force asks
 * for fresh data even where a page would rather wait (after an action, on
 * arrival).
 */
async function refresh(force = false) {
  if (refreshing) { again = true; againForce ||= force; return refreshing; }
  const page = current;
  refreshing = (async () => {
    try {
      await page.refresh({ force });
      banner.hidden = true;
      conn.textContent = `served by ${nodeName || server.servedBy}`;
      conn.classList.remove('down');
    } catch (e) {
      // A token revoked meanwhile: forget it and say so.
      if (e.status === 401 && token()) identify();
      banner.textContent = `Could not refresh: ${e} — retrying every ${POLL_MS / 1000} s.`;
      banner.hidden = false;
      conn.classList.add('down');
    }
  })();
  await refreshing;
  refreshing = null;
  if (again) {
    const f = againForce;
    again = againForce = false;
    refresh(f);
  }
}

let soon;
ctx.refreshSoon = () => { clearTimeout(soon); soon = setTimeout(() => refresh(true), 200); };

// Device and request state changes refresh the page shown; a burst of them
// makes one refresh. The browser reconnects a dropped stream by itself,
// resuming after the last event it saw.
let streaming = false, pending = null;
if (window.EventSource) {
  const es = new EventSource(eventsURL());
  es.onopen = () => { streaming = true; document.documentElement.dataset.events = 'open'; };
  es.onerror = () => { streaming = false; document.documentElement.dataset.events = 'closed'; };
  const changed = () => {
    if (pending || document.hidden) return;
    pending = setTimeout(() => { pending = null; refresh(); }, EVENT_REFRESH_MS);
  };
  es.addEventListener('device', changed);
  es.addEventListener('request', changed);
}

// Poll the page shown (every POLL_MS, or STREAM_POLL_MS while the stream
// is open); a hidden tab does not poll, and catches up when seen.
let lastPoll = 0;
setInterval(() => {
  const slow = streaming && current !== pages.log;
  if (document.hidden || (slow && Date.now() - lastPoll < STREAM_POLL_MS)) return;
  lastPoll = Date.now();
  refresh();
}, POLL_MS);
document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });

// "/" jumps to the page's search box, as in most web apps; Escape closes
// the job list, or else clears the page's selection.
document.addEventListener('keydown', e => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.target.closest('input, textarea, select')) return;
  if (e.key === '/') {
    const box = current?.el.querySelector('input[type=search]');
    if (box) { e.preventDefault(); box.focus(); box.select(); }
  } else if (e.key === 'Escape') {
    if (!ctx.jobs.panel.hidden) ctx.jobs.toggle(false);
    else current?.el.querySelector('.vt-clear:not([hidden])')?.click();
  }
});

window.addEventListener('hashchange', route);
route();
