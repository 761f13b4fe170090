// charts.js — the pictures: an instantiation's phase waterfall (a browser's network
// timeline), per-phase CDFs on a log time axis, small histograms, a per-second bar chart
// and a stacked bar of phase means (the paper's Fig. 6). SVG and HTML only; colours come
// from the stylesheet (classes ph-PHASE), so a phase has the same colour everywhere.
import {h, svg, fmtMs} from './dom.js';

// phases: [[name, ms], ...] in order. One row per phase, its bar starting where the
// previous phases end, on an axis from 0 to the total.
export function waterfall(phases, totalMs) {
  const total = Math.max(totalMs, phases.reduce((s, [, ms]) => s + ms, 0), 1e-9);
  const ticks = niceTicks(total, 5);
  const axis = h('div', {class: 'wf-axis'}, ticks.map((t) =>
    h('span', {class: 'wf-tick', style: {left: (100 * t / total) + '%'}, text: fmtAxis(t)})));
  let start = 0;
  const rows = phases.map(([name, ms]) => {
    const row = h('div', {class: 'wf-row', 'data-phase': name, 'data-ms': String(ms)},
      h('span', {class: 'wf-name', text: name}),
      h('span', {class: 'wf-track'},
        h('span', {class: `wf-bar ph-${name}`, title: `${name}: ${fmtMs(ms)} (from ${fmtMs(start)})`,
          style: {left: (100 * start / total) + '%', width: `max(2px, ${100 * ms / total}%)`}})),
      h('span', {class: 'wf-ms', text: fmtMs(ms)}));
    start += ms;
    return row;
  });
  return h('div', {class: 'waterfall'},
    h('div', {class: 'wf-row wf-head'}, h('span', {class: 'wf-name'}), h('span', {class: 'wf-track'}, axis),
      h('span', {class: 'wf-ms', text: 'duration'})),
    rows,
    h('div', {class: 'wf-row wf-total', 'data-ms': String(totalMs)}, h('span', {class: 'wf-name', text: 'total'}),
      h('span', {class: 'wf-track'}), h('span', {class: 'wf-ms', text: fmtMs(totalMs)})));
}

function niceTicks(max, count) {
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let t = 0; t <= max * 1.0001; t += step) out.push(t);
  return out;
}

// series: [{name, cls, values: sorted Float64Array (ms)}]. x: log10 ms, y: 0..1.
export function cdf(series, {width = 640, height = 260} = {}) {
  const m = {l: 44, r: 12, t: 10, b: 30};
  const all = series.flatMap((s) => [s.values[0], s.values[s.values.length - 1]]).filter((v) => v > 0);
  const root = svg('svg', {class: 'chart cdf', viewBox: `0 0 ${width} ${height}`, role: 'img'});
  if (all.length === 0) return root;
  const lo = 10 ** Math.floor(Math.log10(Math.min(...all)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...all) * 1.0001));
  const x = (v) => m.l + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (width - m.l - m.r);
  const y = (p) => height - m.b - p * (height - m.t - m.b);
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    root.append(svg('line', {class: 'grid', x1: x(d), x2: x(d), y1: y(0), y2: y(1)}),
      svg('text', {class: 'axis', x: x(d), y: height - 10, 'text-anchor': 'middle', text: fmtAxis(d)}));
  }
  for (const p of [0, 0.5, 0.9, 0.99, 1]) {
    root.append(svg('line', {class: 'grid', x1: m.l, x2: width - m.r, y1: y(p), y2: y(p)}),
      svg('text', {class: 'axis', x: m.l - 6, y: y(p) + 4, 'text-anchor': 'end', text: String(p)}));
  }
  for (const s of series) {
    const n = s.values.length;
    if (n === 0) continue;
    const step = Math.max(1, Math.floor(n / 400)); // enough points for the eye
    let d = '';
    for (let i = 0; i < n; i += step) d += `${i ? 'L' : 'M'}${x(s.values[i]).toFixed(1)},${y((i + 1) / n).toFixed(1)}`;
    d += `L${x(s.values[n - 1]).toFixed(1)},${y(1).toFixed(1)}`;
    root.append(svg('path', {class: `line ${s.cls}`, d}, svg('title', {text: s.name})));
  }
  root.append(svg('text', {class: 'axis', x: width - m.r, y: height - 10 - 12, 'text-anchor': 'end', text: 'ms (log)'}));
  return root;
}

// Axis labels: short, in the unit that fits ("0", "500 µs", "2 ms", "1.5 s").
function fmtAxis(ms) {
  if (ms === 0) return '0';
  if (ms >= 1000) return `${+(ms / 1000).toFixed(3)} s`;
  if (ms >= 1) return `${+ms.toFixed(3)} ms`;
  return `${+(ms * 1000).toFixed(1)} µs`;
}

// counts: [n...] as small bars (a histogram in a table cell).
export function miniBars(counts, cls, {width = 120, height = 24} = {}) {
  const max = Math.max(1, ...counts);
  const w = width / counts.length;
  return svg('svg', {class: 'chart mini', viewBox: `0 0 ${width} ${height}`, width, height},
    counts.map((c, i) => svg('rect', {class: cls, x: i * w + 0.5, width: Math.max(0.5, w - 1),
      y: height - (height * c) / max, height: (height * c) / max})));
}

// values: one number per second, oldest first: bars with the newest on the right.
export function perSecond(values, cls, {width = 360, height = 70} = {}) {
  const max = Math.max(1, ...values);
  const w = width / Math.max(1, values.length);
  return svg('svg', {class: 'chart persec', viewBox: `0 0 ${width} ${height}`, role: 'img'},
    values.map((v, i) => svg('rect', {class: cls, x: i * w + 0.5, width: Math.max(0.5, w - 1),
      y: height - (height * v) / max, height: (height * v) / max}, svg('title', {text: String(v)}))));
}

// parts: [[phase, ms]...]: one bar split by phase, widths by share of the sum.
export function stackedBar(parts) {
  const sum = parts.reduce((s, [, v]) => s + v, 0) || 1;
  return h('div', {class: 'stacked'}, parts.map(([name, v]) =>
    h('span', {class: `seg ph-${name}`, title: `${name}: ${fmtMs(v)}`, style: {width: (100 * v) / sum + '%'}})));
}

export function legend(names) {
  return h('div', {class: 'legend'}, names.map((n) => h('span', {class: 'key'}, h('i', {class: `sw ph-${n}`}), n)));
}
