// view-instance.js — one instance (GET /v1/instances/ID, read again on each of its events):
// what it is, its state history, the waterfall of its instantiation's phases, and its logs
// (GET /v1/instances/ID/logs?stream=stdout|stderr|serial[&follow=1], chunked text; follow
// ends when the instance ends). While a core has no logs route the panel shows its error.
import {getJSON, streamText} from './api.js';
import {h, clear, fmtMs, fmtTime, throttle, stateBadge} from './dom.js';
import {waterfall, legend} from './charts.js';
import {model, subscribe, putInstance, nodeName, PHASES, TERMINAL, reportError} from './live.js';
import {deleteInstance} from './view-instances.js';

const LOG_KEEP = 256 * 1024; // characters of a log shown (the newest)

// The instants the record and the trace give, then the events this page saw.
function history(inst) {
  const rows = [];
  const created = Date.parse(inst.created_at);
  if (inst.created_at) rows.push({state: 'pending', ms: created, source: 'created_at'});
  if (inst.trace && inst.created_at) {
    const p = inst.trace.phases;
    rows.push({state: 'scheduled', ms: created + p.accept + p.schedule, source: 'trace (accept + schedule)'});
    rows.push({state: 'running', ms: created + inst.trace.total_ms, source: 'trace (total)'});
  }
  for (const e of inst.history || []) rows.push({state: e.state, ms: Date.parse(e.time), source: 'event'});
  if (inst.updated_at && inst.full) rows.push({state: inst.state, ms: Date.parse(inst.updated_at), source: 'updated_at'});
  rows.sort((a, b) => a.ms - b.ms);
  return rows;
}

function logsPanel(inst) {
  const out = h('pre', {id: 'log-text'});
  const note = h('div', {class: 'message', id: 'log-note', hidden: true});
  const stream = h('select', {id: 'log-stream'}, ['stdout', 'stderr', 'serial'].map((s) =>
    h('option', {value: s, text: s, selected: s === (inst.driver === 'exec' ? 'stdout' : 'serial')})));
  const follow = h('input', {type: 'checkbox', id: 'log-follow', checked: !TERMINAL.has(inst.state)});
  let ctl = null;

  const load = async () => {
    if (ctl) ctl.abort();
    const mine = ctl = new AbortController();
    out.textContent = '';
    note.hidden = true;
    const q = `stream=${stream.value}${follow.checked ? '&follow=1' : ''}`;
    try {
      await streamText(`/v1/instances/${inst.id}/logs?${q}`, (chunk) => {
        out.textContent = (out.textContent + chunk).slice(-LOG_KEEP);
        out.scrollTop = out.scrollHeight;
      }, {signal: mine.signal});
      if (follow.checked && ctl === mine) Object.assign(note, {hidden: false, textContent: 'the instance ended; the log is complete'});
    } catch (err) {
      if (err.name === 'AbortError') return;
      note.hidden = false;
      note.className = 'message bad';
      note.textContent = `${err.code || 'error'}: ${err.message}`;
    }
  };
  stream.addEventListener('change', load);
  follow.addEventListener('change', load);
  const panel = h('section', {class: 'card logs', id: 'logs'}, h('h2', {text: 'Logs'}),
    h('div', {class: 'toolbar'}, stream, h('label', {}, follow, ' follow'),
      h('button', {text: 'Reload', onclick: load})), note, out);
  load();
  return {panel, stop: () => ctl && ctl.abort()};
}

function findTrace(id) {
  for (const arr of model.traces.values())
    for (let i = arr.length - 1; i >= 0; i--) if (arr[i].id === id) return arr[i];
  return null;
}

export default {
  title: 'Instance',
  mount(el, [id]) {
    const head = h('div', {});
    const body = h('div', {});
    const note = h('div', {class: 'message', hidden: true});
    el.append(head, note, body);
    let logs = null, gone = false;

    const say = (msg, bad) => Object.assign(note, {hidden: false, className: 'message' + (bad ? ' bad' : ' ok'), textContent: msg});

    const paint = () => {
      const inst = model.instances.get(id);
      if (!inst || !inst.full) return;
      clear(head, h('h1', {}, inst.name, ' ', stateBadge(inst.state)),
        h('div', {class: 'toolbar'}, h('a', {href: '#/instances', text: '‹ instances'}),
          h('button', {class: 'danger', id: 'delete', text: TERMINAL.has(inst.state) ? 'Remove' : 'Stop',
            disabled: !TERMINAL.has(inst.state) && inst.desired === 'stopped',
            onclick: async () => {
              try {
                const what = await deleteInstance(inst);
                say(`${inst.name}: ${what}`);
                if (what === 'removed') location.hash = '#/instances';
              } catch (err) {
                say(`${err.code}: ${err.message}`, true);
              }
            }})));
      const facts = [['id', inst.id], ['driver', inst.driver], ['node', nodeName(inst.node)], ['desired', inst.desired],
        ['created', fmtTime(inst.created_at) + '  ' + inst.created_at], ['updated', fmtTime(inst.updated_at)]];
      if (inst.exit_code !== undefined) facts.push(['exit code', String(inst.exit_code)]);
      if (inst.ready !== undefined) facts.push(['ready', String(inst.ready)]);
      if (inst.error) facts.push(['error', inst.error]);
      const phases = inst.trace ? PHASES.filter((p) => p in inst.trace.phases).map((p) => [p, inst.trace.phases[p]]) : [];
      const sections = [
        h('div', {class: 'grid2'},
          h('section', {class: 'card'}, h('h2', {text: 'Instance'}),
            h('dl', {class: 'kv'}, facts.map(([k, v]) => [h('dt', {text: k}), h('dd', {class: k === 'id' ? 'mono' : '', text: v})]))),
          h('section', {class: 'card'}, h('h2', {text: 'State history'}),
            h('table', {id: 'history'}, h('thead', {}, h('tr', {}, ['time', 'state', 'from'].map((t) => h('th', {text: t})))),
              h('tbody', {}, history(inst).map((r) => h('tr', {}, h('td', {class: 'mono', text: fmtTime(new Date(r.ms).toISOString())}),
                h('td', {}, stateBadge(r.state)), h('td', {class: 'muted', text: r.source}))))))),
        h('section', {class: 'card', id: 'phases'}, h('h2', {text: 'Instantiation'}),
          inst.trace ? [h('p', {class: 'muted'}, `total ${fmtMs(inst.trace.total_ms)}, VIM overhead ${fmtMs(inst.trace.overhead_ms)}`,
            inst.trace.image_cache ? `, image cache ${inst.trace.image_cache}` : ''),
          waterfall(phases, inst.trace.total_ms), legend(phases.map(([p]) => p))]
            : h('p', {class: 'muted', text: TERMINAL.has(inst.state) || inst.state === 'running'
              ? 'no trace: this instance did not reach running through this core process'
              : 'not running yet: its phases appear when it is'})),
        h('section', {class: 'card'}, h('h2', {text: 'Spec'}), h('pre', {id: 'spec', text: JSON.stringify(inst.spec, null, 2)})),
      ];
      // the logs panel keeps its stream across repaints
      if (!logs) logs = logsPanel(inst);
      clear(body, sections, logs.panel);
    };

    // Gone from the core; its trace may still be among the recent ones (GET /v1/traces).
    const removed = (why) => {
      gone = true;
      load.cancel();
      const t = findTrace(id);
      clear(head, h('h1', {text: t ? t.name : 'Instance ' + id}));
      clear(body, t ? h('section', {class: 'card', id: 'phases'}, h('h2', {text: 'Instantiation'}),
        h('p', {class: 'muted', text: `${t.driver} on ${nodeName(t.node)}, running at ${t.running_at}; ` +
          `total ${fmtMs(t.trace.total_ms)}, VIM overhead ${fmtMs(t.trace.overhead_ms)} (from the recent traces)`}),
        waterfall(PHASES.filter((p) => p in t.trace.phases).map((p) => [p, t.trace.phases[p]]), t.trace.total_ms))
        : null);
      say(why, true);
    };
    const load = throttle(async () => {
      if (gone) return;
      try {
        putInstance(await getJSON(`/v1/instances/${encodeURIComponent(id)}`));
        paint();
      } catch (err) {
        if (err.status === 404) removed(`${err.code}: ${err.message} (removed, or never here)`);
        else reportError(err);
      }
    }, 200);
    // an event for it: read it again; out of the model: this page removed it
    const changed = () => (model.instances.has(id) ? load() : removed('removed'));

    const subs = [subscribe('instance:' + id, changed), subscribe('nodes', paint)];
    load();
    return () => {
      subs.forEach((u) => u());
      load.cancel();
      if (logs) logs.stop();
    };
  },
};
