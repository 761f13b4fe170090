// view-nodes.js — every node the core knows (GET /v1/nodes): state, resources offered and
// allocated, drivers with their versions, bridges, labels, last heartbeat. Reloaded on node
// events, when instances change (allocations), at most every 2 s, and every 5 s while the
// view is open, for the heartbeats (they are not events).
import {h, clear, fmtNum, fmtTime, fmtAgo, throttle, stateBadge} from './dom.js';
import {model, subscribe, loadNodes, reportError} from './live.js';

function meter(used, total, unit) {
  const pct = total > 0 ? Math.min(100, (100 * used) / total) : 0;
  return h('div', {}, h('span', {class: 'mono', text: `${fmtNum(used)} / ${fmtNum(total)} ${unit}`}),
    h('div', {class: 'meter', title: `${pct.toFixed(1)} %`}, h('span', {style: {width: pct + '%'}})));
}

function drivers(d) {
  return Object.entries(d || {}).map(([name, info]) => h('span', {class: 'chip', title: info.allow ?
    'may run: ' + info.allow.join(', ') : ''}, info.version ? `${name} ${info.version}` : name));
}

export default {
  title: 'Nodes',
  mount(el) {
    const body = h('div', {});
    el.append(h('h1', {text: 'Nodes'}), body);
    const reload = throttle(() => loadNodes().catch(reportError), 2000);

    const paint = throttle(() => {
      const nodes = [...model.nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
      if (nodes.length === 0) {
        clear(body, h('p', {class: 'muted', text: 'No node has registered with this core.'}));
        return;
      }
      const now = Date.now();
      clear(body, h('div', {class: 'table-wrap'}, h('table', {id: 'nodes-table'},
        h('thead', {}, h('tr', {}, ['node', 'state', 'vCPUs allocated / offered', 'memory allocated / offered',
          'instances', 'drivers', 'bridges', 'labels', 'last heartbeat'].map((t) => h('th', {text: t})))),
        h('tbody', {}, nodes.map((n) => h('tr', {'data-node': n.id},
          h('td', {}, h('div', {text: n.name}), h('div', {class: 'muted mono', text: n.id}),
            h('div', {class: 'muted', text: n.address || ''})),
          h('td', {}, stateBadge(n.state === 'ready' ? 'ready' : 'down')),
          h('td', {}, meter(n.allocated.vcpus, n.resources.vcpus, 'vCPU'),
            h('div', {class: 'muted', text: `${n.resources.cpus} host CPUs`})),
          h('td', {}, meter(n.allocated.memory_mb, n.resources.memory_mb, 'MiB')),
          h('td', {class: 'num', text: String(n.instances)}),
          h('td', {}, drivers(n.drivers)),
          h('td', {}, (n.bridges || []).length ? n.bridges.map((b) => h('span', {class: 'chip', text: b}))
            : h('span', {class: 'muted', text: 'none'})),
          h('td', {}, Object.keys(n.labels || {}).length ? Object.entries(n.labels).map(([k, v]) =>
            h('span', {class: 'chip', text: `${k}=${v}`})) : h('span', {class: 'muted', text: 'none'})),
          h('td', {}, h('div', {text: fmtTime(n.last_heartbeat)}),
            h('div', {class: 'muted', text: fmtAgo(n.last_heartbeat, now)}))))))));
    }, 500);

    const subs = [subscribe('nodes', paint), subscribe('instances', reload)];
    const heartbeats = setInterval(reload, 5000);
    reload();
    paint();
    return () => {
      subs.forEach((u) => u());
      clearInterval(heartbeats);
      reload.cancel();
      paint.cancel();
    };
  },
};
