// api.js — the core's REST API (docs/API.md) as the dashboard uses it: the bearer token,
// asked for once when the core answers 401 and kept in sessionStorage for the tab's life;
// the uniform JSON error {"error": {"code", "message"}} as an ApiError; and chunked
// answers (the event stream, logs) read as they arrive.

const TOKEN_KEY = 'microvim.token';
const ATTEMPTS = 5; // wrong tokens typed in a row before a request gives up

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let askToken = null; // async (why) => token; set by the app
let asking = null;   // the prompt open now: every request that got 401 waits for it

export function onTokenNeeded(fn) {
  askToken = fn;
}

export function hasToken() {
  return sessionStorage.getItem(TOKEN_KEY) !== null;
}

async function errorOf(resp) {
  const text = await resp.text().catch(() => '');
  try {
    const e = JSON.parse(text).error;
    if (e && typeof e.message === 'string') return new ApiError(resp.status, e.code || 'error', e.message);
  } catch { /* not the API's JSON: say what came */ }
  return new ApiError(resp.status, 'http_' + resp.status, `${resp.status} ${resp.statusText} ${text.slice(0, 200)}`);
}

async function tokenAfter401(resp) {
  const err = await errorOf(resp);
  if (!askToken) throw err;
  if (!asking) asking = askToken(hasToken() ? 'The token was refused: ' + err.message : err.message)
    .finally(() => { asking = null; });
  const token = await asking; // rejects when the person cancels
  sessionStorage.setItem(TOKEN_KEY, token);
}

// One request; resolves with the Response when the status is 2xx or 304, else throws
// ApiError. A 401 asks for the token (once for all requests waiting) and tries again.
export async function request(method, path, {body, signal, accept} = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = new Headers();
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.set('Authorization', 'Bearer ' + token);
    if (accept) headers.set('Accept', accept);
    const init = {method, headers, signal, cache: 'no-store'};
    if (body !== undefined) {
      headers.set('Content-Type', 'application/json');
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    if (resp.status === 401 && attempt < ATTEMPTS) {
      await tokenAfter401(resp);
      continue;
    }
    if (!resp.ok) throw await errorOf(resp);
    return resp;
  }
}

export async function getJSON(path, opts) {
  const resp = await request('GET', path, opts);
  return resp.json();
}

export async function send(method, path, body) {
  const resp = await request(method, path, {body});
  return resp.status === 204 ? null : resp.json();
}

// Reads a chunked answer as text as it arrives: onOpen() once the answer began, then
// onText(chunk) for each piece. Resolves when the server ends it; rejects on an error
// answer (ApiError), a network error, or when `signal` aborts.
export async function streamText(path, onText, {signal, accept, onOpen} = {}) {
  const resp = await request('GET', path, {signal, accept});
  if (onOpen) onOpen();
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    onText(value);
  }
}

const LINE_MAX = 1 << 20; // a longer line than this is not one of the core's events

// The same, for JSON lines (GET /v1/events): onLine(object) per complete line.
export async function streamLines(path, onLine, opts) {
  let pending = '';
  await streamText(path, (chunk) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line) onLine(JSON.parse(line));
    }
    if (pending.length > LINE_MAX) throw new Error('an event line longer than 1 MiB');
  }, {...opts, accept: 'application/x-ndjson'});
}
