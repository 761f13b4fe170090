// view-create.js — POST /v1/instances from a form: driver, command and arguments (exec)
// or image (VM drivers), resources, count. The core checks everything; its error message
// is shown as it is.
import {getJSON, send} from './api.js';
import {h, clear} from './dom.js';
import {model, subscribe, reportError} from './live.js';

export default {
  title: 'Create',
  mount(el) {
    const result = h('div', {id: 'create-result'});
    const allowedList = h('datalist', {id: 'c-allowed'});
    const f = {
      name: h('input', {id: 'c-name', required: true, maxlength: 63, pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]*', placeholder: 'fw1'}),
      driver: h('select', {id: 'c-driver'}),
      command: h('input', {id: 'c-command', list: 'c-allowed', placeholder: '/usr/bin/my-vnf'}),
      args: h('input', {id: 'c-args', placeholder: 'arguments, separated by spaces'}),
      image: h('select', {id: 'c-image'}),
      ready: h('input', {id: 'c-ready', placeholder: 'optional: a line the guest prints when ready'}),
      vcpus: h('input', {id: 'c-vcpus', type: 'number', min: 0.001, max: 256, step: 'any', value: 0.1}),
      memory: h('input', {id: 'c-memory', type: 'number', min: 1, max: 1048576, step: 1, value: 16}),
      count: h('input', {id: 'c-count', type: 'number', min: 1, max: 1000, step: 1, value: 1}),
    };
    const execRows = [h('label', {for: 'c-command', text: 'command'}), f.command,
      h('label', {for: 'c-args', text: 'arguments'}), f.args,
      h('div', {class: 'hint', text: 'no shell: each space-separated word is one argument'})];
    const vmRows = [h('label', {for: 'c-image', text: 'image'}), f.image,
      h('label', {for: 'c-ready', text: 'ready marker'}), f.ready];
    const toggle = () => {
      const exec = f.driver.value === 'exec';
      for (const e of execRows) e.hidden = !exec;
      for (const e of vmRows) e.hidden = exec;
    };
    f.driver.addEventListener('change', toggle);

    const submit = async (e) => {
      e.preventDefault();
      const body = {name: f.name.value.trim(), driver: f.driver.value,
        resources: {vcpus: Number(f.vcpus.value), memory_mb: Number(f.memory.value)}, count: Number(f.count.value)};
      if (body.driver === 'exec') {
        body.config = {command: f.command.value.trim(), args: f.args.value.split(/\s+/).filter(Boolean)};
      } else {
        body.image = f.image.value;
        if (f.ready.value.trim()) body.ready = {serial: f.ready.value.trim()};
      }
      button.disabled = true;
      try {
        const js = await send('POST', '/v1/instances', body);
        clear(result, h('div', {class: 'message ok'}, `created ${js.instances.length}: `,
          js.instances.map((i, k) => [k ? ', ' : '', h('a', {href: '#/instance/' + i.id, text: i.name})])));
      } catch (err) {
        clear(result, h('div', {class: 'message bad', text: `${err.code}: ${err.message}`}));
      } finally {
        button.disabled = false;
      }
    };
    const button = h('button', {class: 'primary', type: 'submit', id: 'c-submit', text: 'Create'});
    el.append(h('h1', {text: 'Create instances'}),
      h('form', {class: 'form', id: 'create-form', onsubmit: submit},
        h('label', {for: 'c-name', text: 'name'}), f.name,
        h('div', {class: 'hint', text: 'with a count above 1: NAME-1 … NAME-N'}),
        h('label', {for: 'c-driver', text: 'driver'}), f.driver,
        execRows, vmRows,
        h('label', {for: 'c-vcpus', text: 'vCPUs'}), f.vcpus,
        h('label', {for: 'c-memory', text: 'memory (MiB)'}), f.memory,
        h('label', {for: 'c-count', text: 'count'}), f.count,
        h('span', {}), h('div', {}, button)),
      allowedList, result);
    // what the ready nodes offer: drivers, and the executables exec may run there
    const offers = () => {
      const offered = new Set(), allowed = new Set();
      for (const n of model.nodes.values()) {
        if (n.state !== 'ready') continue;
        for (const [d, info] of Object.entries(n.drivers || {})) {
          offered.add(d);
          for (const p of (info && info.allow) || []) allowed.add(p);
        }
      }
      const drivers = offered.size ? [...offered].sort() : ['exec', 'qemu', 'libvirt', 'xen'];
      const keep = f.driver.value;
      clear(f.driver, drivers.map((d) => h('option', {value: d, text: d, selected: d === keep})));
      clear(allowedList, [...allowed].sort().map((p) => h('option', {value: p})));
      toggle();
    };
    const unsubscribe = subscribe('nodes', offers);
    offers();
    getJSON('/v1/images').then((js) => {
      clear(f.image, js.images.length ? js.images.map((i) => h('option', {value: i.name, text: i.name}))
        : h('option', {value: '', text: 'no image registered (microvim image add)'}));
    }).catch(reportError);
    return unsubscribe;
  },
};
