// The job queue: every action on a row becomes one job, run a few at a
// time, listed in a panel with its outcome. Failures stay on the list (and
// open it) until cleared, so an operator acting on 200 boards sees exactly
// which ones refused and why.

import { h, plural } from './dom.js';

const CONCURRENCY = 4;
const KEEP_DONE = 300;

let nextId = 1;

export class JobQueue {
  constructor({ onDone }) {
    this.onDone = onDone;
    this.jobs = []; // newest last
    this.running = 0;
    this.indicator = h('button.jobs-indicator', { type: 'button', onclick: () => this.toggle(), 'aria-expanded': 'false', 'aria-controls': 'jobs-panel' });
    this.list = h('ol.jobs-list');
    this.panel = h('aside.jobs-panel', { id: 'jobs-panel', hidden: true, 'aria-label': 'job queue' },
      h('header',
        h('strong', 'Jobs'),
        h('span.spacer'),
        h('button.link', { type: 'button', onclick: () => this.retryFailed() }, 'retry failed'),
        h('button.link', { type: 'button', onclick: () => this.clearFinished() }, 'clear finished'),
        h('button.icon', { type: 'button', 'aria-label': 'close', onclick: () => this.toggle(false) }, '×')),
      this.list);
    this.update();
  }

  /** add queues fn (async, may return a result text) under label. */
  add(label, fn) {
    this.jobs.push({ id: nextId++, label, fn, state: 'queued', message: '' });
    this.pump();
    this.update();
  }

  pump() {
    while (this.running < CONCURRENCY) {
      const job = this.jobs.find(j => j.state === 'queued');
      if (!job) break;
      job.state = 'running';
      this.running++;
      this.run(job);
    }
  }

  async run(job) {
    try {
      const msg = await job.fn();
      job.state = 'done';
      job.message = msg || '';
    } catch (e) {
      job.state = 'failed';
      job.message = String(e);
      this.toggle(true);
    }
    this.running--;
    this.trim();
    this.pump();
    this.update();
    this.onDone(job);
  }

  trim() {
    const done = this.jobs.filter(j => j.state === 'done');
    if (done.length > KEEP_DONE) {
      const drop = new Set(done.slice(0, done.length - KEEP_DONE));
      this.jobs = this.jobs.filter(j => !drop.has(j));
    }
  }

  retryFailed() {
    for (const j of this.jobs) if (j.state === 'failed') { j.state = 'queued'; j.message = ''; }
    this.pump();
    this.update();
  }

  clearFinished() {
    this.jobs = this.jobs.filter(j => j.state === 'queued' || j.state === 'running');
    this.update();
  }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.indicator.setAttribute('aria-expanded', String(open));
    if (open) this.renderList();
  }

  counts() {
    const c = { queued: 0, running: 0, done: 0, failed: 0 };
    for (const j of this.jobs) c[j.state]++;
    return c;
  }

  update() {
    const c = this.counts();
    const pending = c.queued + c.running;
    this.indicator.replaceChildren(
      h('span.dot', { class: pending ? 'busy' : '' }),
      pending ? `${plural(pending, 'job')} queued` : 'no jobs queued',
      c.failed ? h('span.fail-count', `${c.failed} failed`) : null);
    this.indicator.classList.toggle('has-failed', c.failed > 0);
    if (!this.panel.hidden) this.renderList();
  }

  renderList() {
    const items = this.jobs.slice().reverse().map(j => h('li', { class: 'job-' + j.state },
      h('span.job-state', { title: j.state }, { queued: '…', running: '⟳', done: '✓', failed: '✗' }[j.state]),
      h('span.job-label', j.label),
      j.message ? h('span.job-msg', j.message) : null));
    this.list.replaceChildren(...(items.length ? items : [h('li.muted', 'Nothing yet: actions you take appear here.')]));
  }
}
