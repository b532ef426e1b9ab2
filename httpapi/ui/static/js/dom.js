// Small DOM helpers: no framework.

const escapes = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** esc escapes text for HTML. */
export function esc(v) {
  return v == null ? '' : String(v).replace(/[&<>"']/g, c => escapes[c]);
}

/**
 * h builds an element: h('button.primary', {onclick}, 'Go'). Attributes
 * starting with "on" are listeners; children are nodes or text.
 */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** options fills a <select> with values ([value, label] pairs or strings), keeping the choice. */
export function options(select, values) {
  const keep = select.value;
  select.replaceChildren(...values.map(v => {
    const [value, label] = Array.isArray(v) ? v : [v, v];
    return h('option', { value }, label);
  }));
  if ([...select.options].some(o => o.value === keep)) select.value = keep;
}

/** stateClass buckets a device or request state for colour. */
export function stateClass(state) {
  if (!state) return 's-none';
  if (state.startsWith('failed') || state === 'expired') return 's-bad';
  if (state === 'ready' || state === 'free') return 's-ok';
  if (state === 'closed' || state === 'new') return 's-idle';
  if (state === 'maintenance_mode' || state === 'locked_out' || state === 'troubleshooting') return 's-warn';
  return 's-busy';
}

/** stateBadge is the HTML of a coloured state pill. */
export function stateBadge(state) {
  return `<span class="badge ${stateClass(state)}">${esc(state || '-')}</span>`;
}

/** debounce runs fn once, ms after the last call. */
export function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

/** plural: plural(3, 'device') → "3 devices". */
export function plural(n, word, many = word + 's') {
  return `${n.toLocaleString('en-US')} ${n === 1 ? word : many}`;
}

/** tabs builds a tab strip over panels: [[label, panel], ...]. */
export function tabs(pairs) {
  const strip = h('div.tabs', { role: 'tablist' });
  const body = h('div.tab-body');
  const buttons = pairs.map(([label, panel], i) => {
    const b = h('button.tab', { type: 'button', role: 'tab', onclick: () => pick(i) }, label);
    strip.append(b);
    body.append(panel);
    return b;
  });
  function pick(i) {
    buttons.forEach((b, j) => b.setAttribute('aria-selected', String(i === j)));
    pairs.forEach(([, p], j) => { p.hidden = i !== j; });
  }
  pick(0);
  return h('div.actions', strip, body);
}
