// view-overview.js — the cluster at a glance: nodes ready/down, instances by state (the
// core's own gauges, GET /metrics, reread when events say something changed, at most
// every 2 s), instantiations per second and VIM overhead over the last minute (from the
// traces, see live.js).
import {request} from './api.js';
import {h, clear, fmtMs, fmtRate, fmtTime, throttle, stateBadge} from './dom.js';
import {perSecond, stackedBar, legend} from './charts.js';
import {model, subscribe, recentTraces, reportError, nodeName, PHASES, wantTraces} from './live.js';
import {summary} from './stats.js';

const STATES = ['pending', 'scheduled', 'starting', 'running', 'stopped', 'exited', 'failed', 'lost'];
const WINDOW_S = 60;
const LATEST = 8;

// Prometheus text: the samples of one metric by the value of one label.
export function metricByLabel(text, metric, label) {
  const out = {};
  const re = new RegExp(`^${metric}\\{${label}="([^"]*)"\\} ([0-9.eE+-]+)$`, 'gm');
  for (const m of text.matchAll(re)) out[m[1]] = Number(m[2]);
  return out;
}

// Seconds of the last minute the traces cover completely.
function windowSeconds(now) {
  const covered = (now - model.completeSince) / 1000;
  return Math.max(1, Math.min(WINDOW_S, covered));
}

// The newest instantiations, each as one bar split by phase, on a common scale.
function latest(traces) {
  const max = Math.max(1e-9, ...traces.map((t) => t.trace.total_ms));
  return h('section', {class: 'card wide', id: 'ov-latest'}, h('h2', {text: 'Latest instantiations'}),
    traces.length ? [h('table', {},
      h('thead', {}, h('tr', {}, ['running at', 'instance', 'driver', 'node', 'phases', 'total', 'VIM overhead']
        .map((t, i) => h('th', {class: i >= 5 ? 'num' : '', text: t})))),
      h('tbody', {}, traces.map((t) => h('tr', {},
        h('td', {class: 'mono', text: fmtTime(t.running_at)}),
        h('td', {}, h('a', {href: '#/instance/' + t.id, text: t.name})),
        h('td', {text: t.driver}),
        h('td', {text: nodeName(t.node)}),
        h('td', {class: 'bar-cell'}, h('div', {style: {width: (100 * t.trace.total_ms) / max + '%'}},
          stackedBar(PHASES.filter((p) => p in t.trace.phases).map((p) => [p, t.trace.phases[p]])))),
        h('td', {class: 'num', text: fmtMs(t.trace.total_ms)}),
        h('td', {class: 'num', text: fmtMs(t.trace.overhead_ms)}))))),
    legend(PHASES)] : h('p', {class: 'muted', text: 'none in this window'}));
}

export default {
  title: 'Overview',
  mount(el) {
    const cards = h('div', {class: 'cards'});
    el.append(h('h1', {text: 'Overview'}), cards);
    let gauges = null, inflight = null;

    const loadGauges = throttle(async () => {
      try {
        const text = await (await request('GET', '/metrics')).text();
        gauges = metricByLabel(text, 'microvim_instances', 'state');
        const m = text.match(/^microvim_instances_inflight ([0-9]+)$/m);
        inflight = m ? Number(m[1]) : null;
        paint();
      } catch (err) {
        reportError(err);
      }
    }, 2000);

    const paint = throttle(() => {
      const now = Date.now();
      const nodes = [...model.nodes.values()];
      const ready = nodes.filter((n) => n.state === 'ready').length;
      const win = windowSeconds(now);
      const traces = recentTraces(win * 1000, now);
      const perSec = new Array(WINDOW_S).fill(0);
      for (const t of traces) {
        const age = Math.floor((now - t.ms) / 1000);
        if (age >= 0 && age < WINDOW_S) perSec[WINDOW_S - 1 - age]++;
      }
      const over = summary(traces.map((t) => t.trace.overhead_ms));
      const total = summary(traces.map((t) => t.trace.total_ms));
      const drivers = [...new Set(traces.map((t) => t.driver))].sort();

      clear(cards,
        h('section', {class: 'card', id: 'ov-nodes'}, h('h2', {text: 'Nodes'}),
          h('div', {class: 'pair'},
            h('div', {class: 'big', 'data-ready': ready}, String(ready), h('small', {text: 'ready'})),
            h('div', {class: 'big', 'data-down': nodes.length - ready}, String(nodes.length - ready),
              h('small', {text: 'down'})))),
        h('section', {class: 'card', id: 'ov-instances'}, h('h2', {text: 'Instances by state'}),
          gauges ? h('dl', {class: 'kv'}, STATES.filter((s) => gauges[s]).map((s) =>
            [h('dt', {}, stateBadge(s)), h('dd', {class: 'num', 'data-state': s, text: String(gauges[s])})]),
          inflight !== null ? [h('dt', {text: 'in flight'}), h('dd', {'data-inflight': inflight, text: String(inflight)})] : null)
            : h('p', {class: 'muted', text: 'loading…'}),
          gauges && !STATES.some((s) => gauges[s]) ? h('p', {class: 'muted', text: 'no instances'}) : null),
        h('section', {class: 'card', id: 'ov-rate'}, h('h2', {text: 'Instantiations per second'}),
          h('div', {class: 'big', 'data-rate': (traces.length / win).toFixed(3)},
            fmtRate(traces.length / win), h('small', {text: `/s over the last ${win.toFixed(0)} s`})),
          perSecond(perSec, 'bar'),
          h('p', {class: 'muted', 'data-count': traces.length, text: `${traces.length} instantiations; each bar is one second`})),
        h('section', {class: 'card span2', id: 'ov-overhead'}, h('h2', {text: `VIM overhead, last ${win.toFixed(0)} s`}),
          h('div', {class: 'pair'},
            h('div', {class: 'big', 'data-p50': over.p50}, over.n ? fmtMs(over.p50) : '–', h('small', {text: 'p50'})),
            h('div', {class: 'big', 'data-p99': over.p99}, over.n ? fmtMs(over.p99) : '–', h('small', {text: 'p99'}))),
          h('p', {class: 'muted', text: 'total − spawn − boot: what the VIM itself adds'}),
          over.n ? h('table', {},
            h('thead', {}, h('tr', {}, ['driver', 'n', 'overhead p50', 'p99', 'total p50', 'p99'].map((t, i) =>
              h('th', {class: i ? 'num' : '', text: t})))),
            h('tbody', {}, drivers.map((d) => {
              const mine = traces.filter((t) => t.driver === d);
              const o = summary(mine.map((t) => t.trace.overhead_ms)), tt = summary(mine.map((t) => t.trace.total_ms));
              return h('tr', {}, h('td', {text: d}), h('td', {class: 'num', text: String(o.n)}),
                [o.p50, o.p99, tt.p50, tt.p99].map((v) => h('td', {class: 'num', text: fmtMs(v)})));
            })),
            drivers.length > 1 ? h('tfoot', {}, h('tr', {}, h('td', {text: 'all'}),
              h('td', {class: 'num', text: String(over.n)}),
              [over.p50, over.p99, total.p50, total.p99].map((v) => h('td', {class: 'num', text: fmtMs(v)})))) : null)
            : h('p', {class: 'muted', text: 'no instantiation in this window'})),
        latest(traces.slice(-LATEST).reverse()));
    }, 500);

    const subs = [subscribe('nodes', paint), subscribe('traces', paint), subscribe('instances', loadGauges), wantTraces()];
    const tick = setInterval(paint, 1000); // the window slides: no request, only a repaint
    loadGauges();
    paint();
    return () => {
      subs.forEach((u) => u());
      clearInterval(tick);
      paint.cancel();
      loadGauges.cancel();
    };
  },
};
