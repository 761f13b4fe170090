// live.js — what the dashboard knows, kept current by the core's event stream
// (GET /v1/events, one JSON object per line) instead of polling:
//   nodes      GET /v1/nodes at start; again on a node event (ready, down)
//   instances  GET /v1/instances when a view needs the list; then every instance event
//              updates or adds its row (an event carries id, name, state, node, time)
//   traces     GET /v1/traces at start; then, while a view that shows them is open, when
//              "running" events came: the traces after the last sequence number, at most
//              twice a second (the phases of an instantiation are not in its events). Each
//              trace costs the core ~20 µs of JSON, so views without them do not pull.
// Views subscribe to topics ('nodes', 'instances', 'traces', 'status', 'instance:ID')
// and repaint themselves, throttled.
import {getJSON, streamLines} from './api.js';

export const PHASES = ['accept', 'schedule', 'dispatch', 'prepare', 'network', 'spawn', 'boot', 'notify'];
export const TERMINAL = new Set(['stopped', 'exited', 'failed', 'lost']);

const TRACES_KEEP = 1024;        // per driver, as the core's ring (and the last minute besides)
const WINDOW_MS = 60000;         // "the last minute" of the overview
const ENDED_KEEP = 2000;         // ended instances kept in the list (a removal has no event)
const HISTORY_KEEP = 16;         // events remembered per instance
const TRACE_PULL_MS = 500;   // at most 2 pulls a second, each of what came since the last
const RETRY_MAX_MS = 10000;
const LIST_PAGE = 1000;      // GET /v1/instances?limit= (the core's default page)
const LIST_MAX_PAGES = 20;   // a browser holds at most 20,000 rows; the CLI lists them all

export const model = {
  status: 'connecting',  // connecting | live | reconnecting
  statusDetail: '',
  nodes: new Map(),
  instances: new Map(),  // id -> {id, name, state, node, driver?, created_at?, updated_at?, trace?, history: []}
  instancesLoaded: false,
  instancesTruncated: false, // the core holds more than LIST_MAX_PAGES pages: only those are read
  traces: new Map(),     // driver -> [trace...] oldest first (the API's trace objects + ms)
  traceSeq: 0,
  completeSince: -Infinity, // traces are complete from this time (ms) on
  lastSeq: 0,            // of the last event read
  lastError: null,
};

const listeners = new Map();

export function subscribe(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
  return () => listeners.get(topic).delete(fn);
}

function emit(topic) {
  for (const fn of listeners.get(topic) || []) fn();
}

function setStatus(status, detail = '') {
  model.status = status;
  model.statusDetail = detail;
  emit('status');
}

export function reportError(err) {
  model.lastError = err;
  emit('error');
}

// ---- nodes ----

export async function loadNodes() {
  const js = await getJSON('/v1/nodes');
  model.nodes = new Map(js.nodes.map((n) => [n.id, n]));
  emit('nodes');
}

export function nodeName(id) {
  if (!id) return '–';
  const n = model.nodes.get(id);
  return n ? n.name : id;
}

// ---- instances ----

function remember(inst, state, time, source) {
  inst.history = inst.history || [];
  const last = inst.history[inst.history.length - 1];
  if (last && last.state === state && last.source === source) return;
  inst.history.push({state, time, source});
  if (inst.history.length > HISTORY_KEEP) inst.history.shift();
}

// Merges a full INSTANCE (from GET) into the model; returns the model's row.
export function putInstance(js) {
  const old = model.instances.get(js.id);
  const row = Object.assign(old || {history: []}, js, {full: true});
  model.instances.set(js.id, row);
  return row;
}

// The list, page by page (in id order, following "next"), up to LIST_MAX_PAGES pages.
async function readInstancePages() {
  const all = [];
  let after = '';
  for (let page = 0; page < LIST_MAX_PAGES; page++) {
    const js = await getJSON(`/v1/instances?limit=${LIST_PAGE}` + (after ? `&after=${after}` : ''));
    all.push(...js.instances);
    if (!js.next || js.next <= after) return {all, truncated: false};
    after = js.next;
  }
  return {all, truncated: true};
}

// The whole list (or its first pages). Events keep flowing meanwhile on another connection:
// a row whose last event came after the request was sent knows better than the list (its
// state is newer, or it was created after), so it is kept as it is.
export async function loadInstances() {
  const seqAtRequest = model.lastSeq;
  const {all, truncated} = await readInstancePages();
  const fresh = new Map();
  model.instancesTruncated = truncated;
  for (const i of all) {
    const old = model.instances.get(i.id);
    const row = Object.assign({history: old ? old.history : [], seq: old ? old.seq : 0}, i, {full: true});
    if (old && old.seq > seqAtRequest) Object.assign(row, {state: old.state, node: old.node, updated_at: old.updated_at});
    fresh.set(i.id, row);
  }
  for (const [id, old] of model.instances)
    if (!fresh.has(id) && old.seq > seqAtRequest) fresh.set(id, old);
  model.instances = fresh;
  model.instancesLoaded = true;
  emit('instances');
}

export function forgetInstance(id) {
  model.instances.delete(id);
  emit('instances');
  emit('instance:' + id);
}

function pruneEnded() {
  const ended = [];
  for (const i of model.instances.values()) if (TERMINAL.has(i.state)) ended.push(i);
  if (ended.length <= ENDED_KEEP) return;
  ended.sort((a, b) => (a.updated_at < b.updated_at ? -1 : 1));
  for (const i of ended.slice(0, ended.length - ENDED_KEEP)) model.instances.delete(i.id);
}

function onInstanceEvent(ev) {
  let row = model.instances.get(ev.id);
  if (!row) {
    row = {id: ev.id, name: ev.name, state: ev.state, node: ev.node || null, created_at: ev.time, history: []};
    model.instances.set(ev.id, row);
  }
  row.seq = ev.seq;
  row.state = ev.state;
  if (ev.node) row.node = ev.node;
  row.updated_at = ev.time;
  remember(row, ev.state, ev.time, 'event');
  if (ev.state === 'running') pullTracesSoon();
  if (TERMINAL.has(ev.state)) pruneEndedSoon();
  emit('instances');
  emit('instance:' + ev.id);
}

let pruneTimer = null;
function pruneEndedSoon() {
  if (!pruneTimer) pruneTimer = setTimeout(() => { pruneTimer = null; pruneEnded(); }, 1000);
}

// ---- traces ----

function addTraces(list) {
  const now = Date.now();
  for (const t of list) {
    t.ms = Date.parse(t.running_at);
    if (!model.traces.has(t.driver)) model.traces.set(t.driver, []);
    model.traces.get(t.driver).push(t);
    const row = model.instances.get(t.id);
    if (row) {
      row.driver = row.driver || t.driver;
      row.trace = row.trace || t.trace;
    }
  }
  for (const arr of model.traces.values()) {
    let drop = 0;
    while (drop < arr.length - TRACES_KEEP && now - arr[drop].ms > WINDOW_MS) drop++;
    if (drop) arr.splice(0, drop);
  }
}

export async function loadTraces() {
  const js = await getJSON('/v1/traces');
  model.traces = new Map();
  addTraces(js.traces);
  // A full ring has lost older traces: counts are complete only from its oldest one on.
  model.completeSince = -Infinity;
  for (const arr of model.traces.values())
    if (arr.length >= js.capacity) model.completeSince = Math.max(model.completeSince, arr[0].ms);
  model.traceSeq = js.seq;
  emit('traces');
}

let pulling = false, pullAgain = false, pullTimer = null, lastPull = 0;

async function pullTraces() {
  if (pulling) { pullAgain = true; return; }
  pulling = true;
  lastPull = performance.now();
  try {
    const after = model.traceSeq;
    const js = await getJSON('/v1/traces?after=' + after);
    if (js.seq < after) { // a new core process: its numbers start again
      await loadTraces();
      return;
    }
    if (js.seq - after > js.traces.length) model.completeSince = Date.now(); // the ring moved past us
    addTraces(js.traces);
    model.traceSeq = js.seq;
    emit('traces');
    emit('instances');
  } catch (err) {
    reportError(err);
  } finally {
    pulling = false;
    if (pullAgain) { pullAgain = false; pullTracesSoon(); }
  }
}

let tracesWanted = 0; // views open that show traces

// A view that shows traces calls this when it opens; the returned function when it closes.
export function wantTraces() {
  if (tracesWanted++ === 0 && model.traceSeq > 0) pullTracesSoon(); // catch up on what came meanwhile
  return () => { tracesWanted--; };
}

function pullTracesSoon() {
  if (tracesWanted === 0) return;
  if (pullTimer) return;
  const wait = Math.max(0, lastPull + TRACE_PULL_MS - performance.now());
  pullTimer = setTimeout(() => { pullTimer = null; pullTraces(); }, wait);
}

// Traces of the last `ms` milliseconds, all drivers, oldest first.
export function recentTraces(ms = WINDOW_MS, now = Date.now()) {
  const out = [];
  for (const arr of model.traces.values())
    for (let i = arr.length - 1; i >= 0 && now - arr[i].ms <= ms; i--) out.push(arr[i]);
  return out.sort((a, b) => a.seq - b.seq);
}

// ---- the event stream ----

let nodesTimer = null;
function onEvent(ev) {
  if (ev.seq > model.lastSeq) model.lastSeq = ev.seq;
  if (ev.type === 'instance') onInstanceEvent(ev);
  else if (ev.type === 'node' && !nodesTimer)
    nodesTimer = setTimeout(() => { nodesTimer = null; loadNodes().catch(reportError); }, 100);
}

// Everything that may have changed while no stream was open. The new stream's numbers
// may start again (a restarted core): no row counts as newer than the reload.
function resync() {
  model.lastSeq = 0;
  for (const row of model.instances.values()) row.seq = 0;
  return Promise.all([loadNodes(), loadTraces(), model.instancesLoaded ? loadInstances() : null])
    .catch(reportError);
}

// Opens the stream and keeps it open. Once it is open, loads the nodes and traces (and the
// list, if a view loaded it), so that nothing falls between a load and the first event.
// When the stream ends or fails: waits (1 s, doubling up to 10 s) and opens it again.
export async function run() {
  let delay = 1000;
  for (;;) {
    try {
      await streamLines('/v1/events', onEvent, {onOpen: () => { setStatus('live'); delay = 1000; resync(); }});
      setStatus('reconnecting', 'the core closed the event stream');
    } catch (err) {
      setStatus('reconnecting', err.message);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(RETRY_MAX_MS, delay * 2);
  }
}
