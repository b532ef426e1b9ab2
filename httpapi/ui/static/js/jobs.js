// The job queue: every action on a row becomes one job, run a few at a
// time, listed in a panel with its outcome. Failures stay on the list (and
// open it) until cleared, so an operator acting on 200 boards sees exactly
// which ones refused and why. Counts are kept as jobs move, and the panel
// shows a bounded list, so queueing 10,000 jobs stays cheap.

import { h, plural } from './dom.js';

const CONCURRENCY = 4;
const KEEP_DONE = 300;
const SHOW_QUEUED = 50;

let nextId = 1;

export class JobQueue {
  constructor({ onDone }) {
    this.onDone = onDone;
    this.queued = [];   // FIFO; head is the next to run
    this.head = 0;
    this.running = new Set();
    this.failed = [];
    this.done = [];     // the newest KEEP_DONE
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
    this.queued.push({ id: nextId++, label, fn, state: 'queued', message: '' });
    this.pump();
    this.update();
  }

  pending() {
    return this.queued.length - this.head + this.running.size;
  }

  pump() {
    while (this.running.size < CONCURRENCY && this.head < this.queued.length) {
      const job = this.queued[this.head];
      this.queued[this.head++] = null;
      if (this.head > 1000 && this.head * 2 > this.queued.length) {
        this.queued = this.queued.slice(this.head);
        this.head = 0;
      }
      job.state = 'running';
      this.running.add(job);
      this.run(job);
    }
  }

  async run(job) {
    try {
      const msg = await job.fn();
      job.state = 'done';
      job.message = msg || '';
      this.done.push(job);
      if (this.done.length > KEEP_DONE * 2) this.done = this.done.slice(-KEEP_DONE);
    } catch (e) {
      job.state = 'failed';
      job.message = String(e);
      this.failed.push(job);
      this.toggle(true);
    }
    this.running.delete(job);
    this.pump();
    this.update();
    this.onDone(job);
  }

  retryFailed() {
    for (const j of this.failed) { j.state = 'queued'; j.message = ''; this.queued.push(j); }
    this.failed = [];
    this.pump();
    this.update();
  }

  clearFinished() {
    this.failed = [];
    this.done = [];
    this.update();
  }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.indicator.setAttribute('aria-expanded', String(open));
    if (open) this.renderList();
  }

  update() {
    const pending = this.pending();
    const failed = this.failed.length;
    this.indicator.replaceChildren(...[
      h('span.dot', { class: pending ? 'busy' : '' }),
      pending ? `${plural(pending, 'job')} queued` : 'no jobs queued',
      failed ? h('span.fail-count', `${failed} failed`) : null].filter(Boolean));
    this.indicator.classList.toggle('has-failed', failed > 0);
    if (!this.panel.hidden && !this.drawing) {
      // One redraw per frame, however many jobs end in it.
      this.drawing = requestAnimationFrame(() => { this.drawing = 0; this.renderList(); });
    }
  }

  renderList() {
    const item = j => h('li', { class: 'job-' + j.state },
      h('span.job-state', { title: j.state }, { queued: '…', running: '⟳', done: '✓', failed: '✗' }[j.state]),
      h('span.job-label', j.label),
      j.message ? h('span.job-msg', j.message) : null);
    const waiting = this.queued.length - this.head;
    const items = [
      ...this.failed.slice().reverse().map(item),
      ...[...this.running].map(item),
      ...this.queued.slice(this.head, this.head + SHOW_QUEUED).map(item),
      waiting > SHOW_QUEUED ? h('li.muted', `… and ${plural(waiting - SHOW_QUEUED, 'more job')} queued`) : null,
      ...this.done.slice(-KEEP_DONE).reverse().map(item),
    ].filter(Boolean);
    this.list.replaceChildren(...(items.length ? items : [h('li.muted', 'Nothing yet: actions you take appear here.')]));
  }
}
