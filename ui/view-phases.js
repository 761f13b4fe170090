// view-phases.js — where instantiation time goes: for the last N instantiations of one
// driver (GET /v1/traces, kept current by live.js), the mean of each phase as one stacked
// bar (the paper's Fig. 6), a table of each phase's distribution with a histogram, and
// the CDF of each phase, total and VIM overhead on a log time axis.
import {h, clear, fmtMs, throttle} from './dom.js';
import {cdf, miniBars, stackedBar, legend} from './charts.js';
import {model, subscribe, PHASES, wantTraces} from './live.js';
import {summary, sorted, logHistogram} from './stats.js';

const SIZES = [100, 500, 1000];
const choice = {driver: '', n: 1000}; // kept while the tab lives

function seriesOf(traces) {
  const out = [];
  for (const p of PHASES) {
    const vals = traces.filter((t) => p in t.trace.phases).map((t) => t.trace.phases[p]);
    if (vals.length) out.push({name: p, cls: 'ph-' + p, values: vals});
  }
  out.push({name: 'total', cls: 'ph-total', values: traces.map((t) => t.trace.total_ms)});
  out.push({name: 'overhead', cls: 'ph-overhead', values: traces.map((t) => t.trace.overhead_ms)});
  return out;
}

export default {
  title: 'Phases',
  mount(el) {
    const controls = h('div', {class: 'toolbar'});
    const body = h('div', {});
    el.append(h('h1', {text: 'Phases'}), controls, body);

    const paint = throttle(() => {
      const drivers = [...model.traces.keys()].filter((d) => model.traces.get(d).length).sort();
      if (!drivers.includes(choice.driver)) choice.driver = drivers[0] || '';
      clear(controls,
        h('label', {}, 'driver ', h('select', {id: 'phases-driver', onchange: (e) => { choice.driver = e.target.value; paint(); }},
          drivers.map((d) => h('option', {value: d, text: d, selected: d === choice.driver})))),
        h('label', {}, 'last ', h('select', {id: 'phases-n', onchange: (e) => { choice.n = Number(e.target.value); paint(); }},
          SIZES.map((n) => h('option', {value: n, text: String(n), selected: n === choice.n}))), ' instantiations'));
      if (!choice.driver) {
        clear(body, h('p', {class: 'muted', text: 'No instantiation has completed on this core process yet.'}));
        return;
      }
      const all = model.traces.get(choice.driver);
      const traces = all.slice(-choice.n);
      const series = seriesOf(traces);
      const stats = series.map((s) => ({...s, sum: summary(s.values), sorted: sorted(s.values)}));
      const phaseStats = stats.filter((s) => PHASES.includes(s.name));
      const lo = Math.max(1e-3, Math.min(...stats.map((s) => s.sorted[0] || Infinity)));
      const hi = Math.max(...stats.map((s) => s.sorted[s.sorted.length - 1] || 0));
      clear(body,
        h('section', {class: 'card', id: 'phases-means'},
          h('h2', {text: `Mean of each phase, ${choice.driver}, last ${traces.length} (Fig. 6)`}),
          stackedBar(phaseStats.map((s) => [s.name, s.sum.mean])),
          legend(phaseStats.map((s) => s.name)),
          h('p', {class: 'muted', text: `mean total ${fmtMs(stats.find((s) => s.name === 'total').sum.mean)}, ` +
            `mean VIM overhead ${fmtMs(stats.find((s) => s.name === 'overhead').sum.mean)}; ` +
            `from ${traces[0].running_at} to ${traces[traces.length - 1].running_at}`})),
        h('section', {class: 'card', id: 'phases-table'}, h('h2', {text: 'Distribution of each phase'}),
          h('div', {class: 'table-wrap'}, h('table', {},
            h('thead', {}, h('tr', {}, ['phase', 'n', 'mean', 'p50', 'p95', 'p99', 'max', 'histogram (log ms)']
              .map((t, i) => h('th', {class: i && i < 7 ? 'num' : '', text: t})))),
            h('tbody', {}, stats.map((s) => h('tr', {'data-phase': s.name},
              h('td', {}, h('i', {class: `sw ph-${s.name}`}), ' ', s.name),
              h('td', {class: 'num', text: String(s.sum.n)}),
              [s.sum.mean, s.sum.p50, s.sum.p95, s.sum.p99, s.sum.max].map((v) => h('td', {class: 'num', text: fmtMs(v)})),
              h('td', {}, miniBars(logHistogram(s.values, lo, hi, 24).counts, `ph-${s.name}`)))))))),
        h('section', {class: 'card', id: 'phases-cdf'}, h('h2', {text: 'CDF'}),
          cdf(stats.map((s) => ({name: s.name, cls: s.cls, values: s.sorted}))),
          legend(stats.map((s) => s.name))));
    }, 1000);

    const subs = [subscribe('traces', paint), wantTraces()];
    paint();
    return () => {
      subs.forEach((u) => u());
      paint.cancel();
    };
  },
};
