// view-instances.js — the instances, newest first: filtered by state, driver and text,
// a page at a time, kept current by the event stream (live.js). The list is read (GET
// /v1/instances, page by page, at most 20,000 rows) each time the view opens; a row
// created since comes from its events.
// Stop (DELETE of a live instance, 202) and Remove (DELETE of an ended one, 204).
import {send} from './api.js';
import {h, clear, fmtMs, fmtTime, throttle, stateBadge} from './dom.js';
import {model, subscribe, loadInstances, forgetInstance, nodeName, TERMINAL, reportError, wantTraces} from './live.js';

const PAGE = 50;
const STATES = ['pending', 'scheduled', 'starting', 'running', 'stopped', 'exited', 'failed', 'lost'];
const filter = {text: '', state: '', driver: '', page: 0}; // kept while the tab lives

// DELETE from the page: a live instance is asked to stop, an ended one is removed.
export async function deleteInstance(row) {
  const js = await send('DELETE', `/v1/instances/${encodeURIComponent(row.id)}`);
  if (js !== null) return 'stop requested';
  forgetInstance(row.id); // 204: removed from the core
  return 'removed';
}

function matches(row) {
  if (filter.state && row.state !== filter.state) return false;
  if (filter.driver && row.driver !== filter.driver) return false;
  if (!filter.text) return true;
  const t = filter.text.toLowerCase();
  return row.name.toLowerCase().includes(t) || row.id.includes(t) || nodeName(row.node).toLowerCase().includes(t);
}

export default {
  title: 'Instances',
  mount(el) {
    const note = h('div', {class: 'message', hidden: true});
    const table = h('div', {});
    const pager = h('div', {class: 'pager'});
    const text = h('input', {type: 'search', placeholder: 'name, id or node', value: filter.text, id: 'filter-text'});
    const state = h('select', {id: 'filter-state'}, h('option', {value: '', text: 'all states'}),
      STATES.map((s) => h('option', {value: s, text: s, selected: s === filter.state})));
    const driver = h('select', {id: 'filter-driver'}, h('option', {value: '', text: 'all drivers'}),
      ['exec', 'qemu', 'libvirt', 'xen'].map((d) => h('option', {value: d, text: d, selected: d === filter.driver})));
    const onFilter = () => {
      Object.assign(filter, {text: text.value.trim(), state: state.value, driver: driver.value, page: 0});
      paint();
    };
    text.addEventListener('input', onFilter);
    state.addEventListener('change', onFilter);
    driver.addEventListener('change', onFilter);
    el.append(h('h1', {text: 'Instances'}),
      h('div', {class: 'toolbar'}, text, state, driver, h('a', {href: '#/create', text: 'Create…'})), note, table, pager);

    const say = (msg, bad) => {
      note.hidden = false;
      note.className = 'message' + (bad ? ' bad' : ' ok');
      note.textContent = msg;
    };

    const paint = throttle(() => {
      const rows = [...model.instances.values()].filter(matches)
        .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
      const pages = Math.max(1, Math.ceil(rows.length / PAGE));
      filter.page = Math.min(filter.page, pages - 1);
      const shown = rows.slice(filter.page * PAGE, (filter.page + 1) * PAGE);
      if (!model.instancesLoaded && rows.length === 0) {
        clear(table, h('p', {class: 'muted', text: 'loading…'}));
        return;
      }
      clear(table, h('div', {class: 'table-wrap'}, h('table', {id: 'instances-table'},
        h('thead', {}, h('tr', {}, ['name', 'id', 'state', 'driver', 'node', 'created', 'total', 'VIM overhead', '']
          .map((t, i) => h('th', {class: i === 6 || i === 7 ? 'num' : '', text: t})))),
        h('tbody', {}, shown.length ? shown.map((r) => h('tr', {class: 'link', 'data-id': r.id,
          onclick: (e) => { if (e.target.tagName !== 'BUTTON') location.hash = '#/instance/' + r.id; }},
        h('td', {}, h('a', {href: '#/instance/' + r.id, text: r.name})),
        h('td', {class: 'mono', text: r.id}),
        h('td', {}, stateBadge(r.state)),
        h('td', {text: r.driver || '…'}),
        h('td', {text: nodeName(r.node)}),
        h('td', {text: fmtTime(r.created_at)}),
        h('td', {class: 'num', text: r.trace ? fmtMs(r.trace.total_ms) : '–'}),
        h('td', {class: 'num', text: r.trace ? fmtMs(r.trace.overhead_ms) : '–'}),
        h('td', {}, h('button', {class: 'danger', 'data-action': 'delete',
          text: TERMINAL.has(r.state) ? 'Remove' : r.desired === 'stopped' ? 'Stopping' : 'Stop',
          onclick: async (e) => {
            e.target.disabled = true;
            try {
              say(`${r.name}: ${await deleteInstance(r)}`);
            } catch (err) {
              e.target.disabled = false;
              say(`${r.name}: ${err.code}: ${err.message}`, true);
            }
          }}))))
          : h('tr', {}, h('td', {colspan: 9, class: 'muted', text: 'no instance matches'}))))));
      clear(pager,
        h('button', {text: '‹ newer', disabled: filter.page === 0, onclick: () => { filter.page--; paint(); }}),
        h('span', {class: 'muted', id: 'page-info', text: rows.length ?
          `${filter.page * PAGE + 1}–${filter.page * PAGE + shown.length} of ${rows.length}` +
          (model.instancesTruncated ? ' (the first 20,000 by id; `microvim ps` lists all)' : '') : '0'}),
        h('button', {text: 'older ›', disabled: filter.page >= pages - 1, onclick: () => { filter.page++; paint(); }}));
    }, 250);

    const subs = [subscribe('instances', paint), subscribe('nodes', paint), wantTraces()];
    loadInstances().catch((err) => { reportError(err); say(`${err.code || 'error'}: ${err.message}`, true); });
    paint();
    return () => {
      subs.forEach((u) => u());
      paint.cancel();
    };
  },
};
