// app.js — the dashboard's entry: the views behind the #/ routes, the token dialog, the
// event-stream status, and error messages. Everything else is in live.js (data) and the
// view-*.js modules (one per view).
import {onTokenNeeded} from './api.js';
import {model, run, subscribe} from './live.js';
import overview from './view-overview.js';
import nodes from './view-nodes.js';
import instances from './view-instances.js';
import instance from './view-instance.js';
import phases from './view-phases.js';
import create from './view-create.js';

const views = {overview, nodes, instances, instance, phases, create};

const $ = (id) => document.getElementById(id);
let unmount = null;

function show() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const view = views[name] || overview;
  if (unmount) unmount();
  const main = $('view');
  main.replaceChildren();
  main.dataset.view = views[name] ? name : 'overview';
  for (const a of $('nav').querySelectorAll('a'))
    a.classList.toggle('active', a.dataset.view === main.dataset.view ||
      (main.dataset.view === 'instance' && a.dataset.view === 'instances'));
  document.title = `microvim — ${view.title}`;
  unmount = view.mount(main, rest.map(decodeURIComponent)) || null;
}

// The token dialog: resolves with what was typed, rejects on Cancel.
function askToken(why) {
  return new Promise((resolve, reject) => {
    const dlg = $('login'), input = $('login-token');
    $('login-why').textContent = why;
    input.value = '';
    const done = (ok) => {
      $('login-form').onsubmit = null;
      $('login-cancel').onclick = null;
      dlg.close();
      if (ok) resolve(input.value.trim());
      else reject(new Error('no token given: the dashboard cannot read this core'));
    };
    $('login-form').onsubmit = (e) => { e.preventDefault(); done(true); };
    $('login-cancel').onclick = () => done(false);
    dlg.showModal();
    input.focus();
  });
}

function showStatus() {
  const el = $('status');
  el.className = `status status-${model.status}`;
  el.textContent = model.status;
  el.title = model.statusDetail || "the core's event stream";
}

let errorTimer = null;
function showError() {
  const bar = $('error'), err = model.lastError;
  bar.textContent = err ? (err.code ? `${err.code}: ` : '') + err.message : '';
  bar.hidden = !err;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { bar.hidden = true; }, 8000);
}

onTokenNeeded(askToken);
subscribe('status', showStatus);
subscribe('error', showError);
window.addEventListener('hashchange', show);
show();
run();
