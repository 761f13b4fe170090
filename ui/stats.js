// stats.js — small statistics over arrays of numbers (milliseconds).

export function sorted(values) {
  return Float64Array.from(values).sort();
}

// Nearest-rank percentile of sorted values, p in [0, 100].
export function percentile(sortedValues, p) {
  const n = sortedValues.length;
  if (n === 0) return NaN;
  const rank = Math.min(n, Math.max(1, Math.ceil((p / 100) * n)));
  return sortedValues[rank - 1];
}

export function mean(values) {
  if (values.length === 0) return NaN;
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}

export function summary(values) {
  const s = sorted(values);
  return {n: s.length, mean: mean(s), p50: percentile(s, 50), p95: percentile(s, 95),
          p99: percentile(s, 99), max: s.length ? s[s.length - 1] : NaN};
}

// Counts in log-spaced bins between lo and hi (both > 0): {edges, counts}.
export function logHistogram(values, lo, hi, bins) {
  const a = Math.log10(lo), b = Math.log10(Math.max(hi, lo * 1.0001));
  const edges = Array.from({length: bins + 1}, (_, i) => 10 ** (a + ((b - a) * i) / bins));
  const counts = new Array(bins).fill(0);
  for (const v of values) {
    const x = Math.log10(Math.max(v, lo));
    counts[Math.min(bins - 1, Math.max(0, Math.floor(((x - a) / (b - a)) * bins)))]++;
  }
  return {edges, counts};
}
