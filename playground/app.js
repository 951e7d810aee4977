// tslm playground: a chat page in two modes.
//   server      POST /v1/chat/completions with stream: true; the server-sent events are read from
//               the fetch body (a ReadableStream) and each delta appended as it arrives.
//   in-browser  the model runs in this page: a module Web Worker (worker.js) loads /dist/src/browser.js,
//               starts the wasm backend on threads sharing one WebAssembly.Memory (which needs
//               SharedArrayBuffer, so a cross-origin-isolated page), fetches the model's files from
//               /playground/model/ and posts each generated token back.
// Two formats: chat (messages through the model's chat template) and completion (the text is
// continued as it is; the default for a model without a chat template of its own, such as the
// one `tslm quickstart` trains). max_tokens left empty means "what the context leaves": the page
// sends max_tokens_auto, so the server cuts max_tokens to the room after the prompt.
// Plain ES modules, no build step.

const $ = (id) => document.getElementById(id);
const els = {
  model: $('model-name'), status: $('status'), messages: $('messages'), form: $('composer'), prompt: $('prompt'),
  send: $('send'), stop: $('stop'), clear: $('clear'), system: $('system'), temperature: $('temperature'),
  topP: $('top_p'), maxTokens: $('max_tokens'), seed: $('seed'), schema: $('schema'), tps: $('tps'), info: $('browser-info'),
  attachRow: $('attach-row'), attach: $('attach'), attachment: $('attachment'),
};

const state = {
  mode: 'server',
  format: 'chat', // 'chat' | 'completion'
  modelId: null,
  contextLength: null, // tokens, from /v1/models (null: unknown)
  history: [], // {role, content} of finished turns (content: a string, or text and image_url parts)
  imageInput: false, // the server's model reads images (a mixed-modal model: /v1/models' modalities)
  attachment: null, // the PNG to send with the next message, as a data: URL
  busy: false,
  abort: null, // function that stops the running generation
  stopRequested: false,
  worker: null,
  workerReady: null, // Promise<info> of the loaded in-browser model
  nextId: 1,
};
window.__playground = state; // for debugging from the console

function setStatus(text, kind = 'idle') {
  els.status.textContent = text;
  els.status.dataset.state = kind;
}

// ---- messages ---------------------------------------------------------------------------

function addMessage(role, text = '') {
  const div = document.createElement('div');
  div.className = `msg ${role}`;
  div.dataset.role = role;
  div.dataset.testid = role === 'assistant' ? 'assistant-message' : role === 'user' ? 'user-message' : `${role}-message`;
  const r = document.createElement('div');
  r.className = 'role';
  r.textContent = role;
  const c = document.createElement('div');
  c.className = 'content';
  c.textContent = text;
  div.append(r, c);
  els.messages.append(div);
  els.messages.scrollTop = els.messages.scrollHeight;
  return { div, content: c };
}

function addMeta(div, text) {
  const m = document.createElement('div');
  m.className = 'meta';
  m.textContent = text;
  div.append(m);
}

// ---- tokens per second ------------------------------------------------------------------

class Rate {
  constructor() { this.t0 = performance.now(); this.first = null; this.n = 0; this.render(); }
  token(k = 1) {
    const now = performance.now();
    if (this.first === null) this.first = now;
    this.n += k;
    this.last = now;
    this.render();
  }
  /** The exact token count once known (server chunks can merge tokens). */
  count(n) { this.n = n; this.render(); }
  /** Restart the clock (after a model load that is not the reply's latency). */
  restart() { this.t0 = performance.now(); }
  /** Decode rate: tokens after the first over the time since the first (prefill excluded). */
  get rate() { return this.n > 1 && this.last > this.first ? ((this.n - 1) * 1000) / (this.last - this.first) : 0; }
  render(final = false) {
    const ttft = this.first === null ? null : this.first - this.t0;
    els.tps.dataset.tokens = String(this.n);
    els.tps.dataset.rate = this.rate.toFixed(2);
    els.tps.textContent = this.n === 0 ? (final ? 'no tokens' : '… tok/s')
      : `${this.rate.toFixed(1)} tok/s · ${this.n} tokens${ttft === null ? '' : ` · first after ${Math.round(ttft)} ms`}`;
  }
}

// ---- sampling controls ------------------------------------------------------------------

function readParams() {
  const num = (el, name, { min = -Infinity, max = Infinity, int = false } = {}) => {
    if (el.value.trim() === '') return undefined;
    const v = Number(el.value);
    if (!Number.isFinite(v) || v < min || v > max || (int && !Number.isInteger(v))) throw new Error(`${name} must be ${int ? 'an integer' : 'a number'} in [${min}, ${max}]`);
    return v;
  };
  const p = {
    temperature: num(els.temperature, 'temperature', { min: 0, max: 2 }),
    top_p: num(els.topP, 'top_p', { min: 0, max: 1 }),
    max_tokens: num(els.maxTokens, 'max_tokens', { min: 1, max: 1000000, int: true }),
    seed: num(els.seed, 'seed', { int: true }),
    schema: undefined,
  };
  // Never more than the model's context can hold (the server also cuts it to the room the prompt leaves).
  if (p.max_tokens !== undefined && state.contextLength) p.max_tokens = Math.min(p.max_tokens, Math.max(1, state.contextLength - 1));
  const s = els.schema.value.trim();
  if (s) {
    try { p.schema = JSON.parse(s); } catch (e) { throw new Error(`the JSON schema is not valid JSON: ${e.message}`); }
    if (p.schema === null || typeof p.schema !== 'object' || Array.isArray(p.schema)) throw new Error('the JSON schema must be a JSON object');
  }
  return p;
}

// ---- server mode: fetch + server-sent events ----------------------------------------------

/** Yields the data payloads of the server-sent events of a response body. */
async function* sseData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let m;
      while ((m = /\r?\n\r?\n|\r\r/.exec(buf))) {
        const block = buf.slice(0, m.index);
        buf = buf.slice(m.index + m[0].length);
        const data = block.split(/\r?\n|\r/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, ''));
        if (data.length) yield data.join('\n');
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** An Error for a failed response: the API's message, and its code (e.g. context_length_exceeded) as .code. */
async function responseError(res) {
  const t = await res.text();
  let message = t || res.statusText, code;
  try { const j = JSON.parse(t).error; if (j?.message) message = j.message; code = j?.code; } catch { /* not JSON */ }
  const e = new Error(`HTTP ${res.status}: ${message}`);
  e.code = code;
  return e;
}

async function runServer(input, p, onText, rate, onImage = () => {}) {
  const controller = new AbortController();
  state.abort = () => controller.abort();
  if (state.stopRequested) controller.abort();
  const completion = input.prompt !== undefined;
  const body = { model: state.modelId ?? undefined, stream: true, stream_options: { include_usage: true }, max_tokens_auto: true };
  if (completion) body.prompt = input.prompt; else body.messages = input.messages;
  for (const k of ['temperature', 'top_p', 'max_tokens', 'seed']) if (p[k] !== undefined) body[k] = p[k];
  if (p.schema) body.response_format = { type: 'json_schema', json_schema: { name: 'playground', schema: p.schema, strict: true } };
  if (p.schema && completion) throw new Error('a JSON schema needs the chat format');
  let finish = null, usage = null;
  try {
    const res = await fetch(completion ? '/v1/completions' : '/v1/chat/completions', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal: controller.signal,
    });
    if (!res.ok) throw await responseError(res);
    for await (const data of sseData(res.body)) {
      if (data === '[DONE]') break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message ?? JSON.stringify(chunk.error));
      const choice = chunk.choices?.[0];
      const text = completion ? choice?.text : choice?.delta?.content;
      // One chunk per token, except where the server held text back (a partial UTF-8 character).
      if (text) { rate.token(); onText(text); }
      // A mixed-modal model's images come whole in the last chunk (PNG data URLs).
      for (const im of choice?.delta?.images ?? []) if (im?.image_url?.url) onImage(im.image_url.url);
      if (choice?.finish_reason) finish = choice.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
  } catch (e) {
    if (e.name === 'AbortError') return { finish: 'stopped', usage };
    throw e;
  }
  if (usage?.completion_tokens) rate.count(usage.completion_tokens);
  return { finish, usage };
}

// ---- in-browser mode: the model in a Web Worker -------------------------------------------

function loadBrowserModel() {
  if (state.workerReady) return state.workerReady;
  if (!window.crossOriginIsolated) {
    const msg = 'In-browser mode needs a cross-origin-isolated page (SharedArrayBuffer for the wasm threads): serve it with '
      + '"Cross-Origin-Opener-Policy: same-origin" and "Cross-Origin-Embedder-Policy: require-corp" (tslm serve does). '
      + 'window.crossOriginIsolated is false here.';
    return Promise.reject(new Error(msg));
  }
  const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'tslm-model' });
  state.worker = w;
  state.workerReady = new Promise((resolve, reject) => {
    w.addEventListener('message', function onLoad(e) {
      const m = e.data;
      if (m.type === 'progress') setStatus(m.text, 'busy');
      else if (m.type === 'ready') { w.removeEventListener('message', onLoad); resolve(m.info); }
      else if (m.type === 'error' && m.id === undefined) { w.removeEventListener('message', onLoad); reject(new Error(m.message)); }
    });
    w.addEventListener('error', (e) => reject(new Error(`the model worker failed to start: ${e.message ?? 'module error (see the console)'}`)), { once: true });
  });
  w.postMessage({ type: 'load', threads: Math.max(1, Math.min(4, navigator.hardwareConcurrency || 2)) });
  state.workerReady.then(
    (info) => {
      els.info.textContent = `in-browser: ${info.modelType}, ${info.params.toLocaleString()} parameters, ${info.layers} layers, vocab ${info.vocab}\n`
        + `wasm backend, ${info.threads} threads · crossOriginIsolated: ${info.crossOriginIsolated} · loaded in ${info.loadMs} ms`;
      if (state.mode === 'browser' && !state.busy) setStatus('in-browser model ready', 'ready');
    },
    (e) => { state.workerReady = null; state.worker?.terminate(); state.worker = null; if (state.mode === 'browser') setStatus(e.message, 'error'); },
  );
  return state.workerReady;
}

async function runBrowser(input, p, onText, rate) {
  await loadBrowserModel();
  rate.restart();
  const w = state.worker;
  const id = state.nextId++;
  return new Promise((resolve, reject) => {
    const onMsg = (e) => {
      const m = e.data;
      if (m.id !== id) return;
      if (m.type === 'token') { if (m.tokenId >= 0) rate.token(); if (m.text) onText(m.text); }
      else if (m.type === 'done') { w.removeEventListener('message', onMsg); resolve({ finish: m.finishReason, usage: m.usage, stats: m.stats }); }
      else if (m.type === 'error') { w.removeEventListener('message', onMsg); reject(Object.assign(new Error(m.message), { code: m.code })); }
    };
    w.addEventListener('message', onMsg);
    state.abort = () => w.postMessage({ type: 'stop', id });
    w.postMessage({ type: 'generate', id, messages: input.messages, prompt: input.prompt, params: p });
    if (state.stopRequested) state.abort();
  });
}

// ---- an image to send (mixed-modal models) ------------------------------------------------

/** An <img> of a PNG data: URL. */
function imageElement(url, className, alt) {
  const img = document.createElement('img');
  img.src = url; img.className = className; img.alt = alt;
  return img;
}

/** Set (a PNG data: URL) or clear (null) the image that goes with the next message, and show it. */
function setAttachment(url) {
  state.attachment = url;
  els.attachment.replaceChildren();
  if (!url) { els.attach.value = ''; return; }
  const img = imageElement(url, 'thumb', 'image to send');
  const rm = document.createElement('button');
  rm.type = 'button'; rm.textContent = '×'; rm.title = 'remove the image'; rm.dataset.testid = 'attachment-remove';
  rm.addEventListener('click', () => setAttachment(null));
  els.attachment.append(img, rm);
}

els.attach.addEventListener('change', () => {
  const file = els.attach.files?.[0];
  if (!file) { setAttachment(null); return; }
  if (file.type !== 'image/png' && !/\.png$/i.test(file.name)) {
    setAttachment(null);
    setStatus(`${file.name}: the model reads PNG images`, 'error');
    return;
  }
  const reader = new FileReader();
  reader.onload = () => setAttachment(String(reader.result).replace(/^data:[^;,]*/, 'data:image/png'));
  reader.onerror = () => setStatus(`${file.name}: cannot be read (${reader.error?.message ?? 'error'})`, 'error');
  reader.readAsDataURL(file);
});

// ---- the chat loop ------------------------------------------------------------------------

async function send() {
  if (state.busy) return;
  const text = els.prompt.value;
  const image = state.attachment;
  if (!text.trim() && !image) return;
  let p;
  try { p = readParams(); } catch (e) { setStatus(e.message, 'error'); return; }
  const format = state.format;
  if (image && (format !== 'chat' || state.mode !== 'server')) {
    setStatus('an image goes to the server\'s model as a chat message: choose the server mode and the chat format', 'error');
    return;
  }
  // With an image, the message is content parts: the picture, then the text (if any).
  const userContent = image ? [{ type: 'image_url', image_url: { url: image } }, ...(text ? [{ type: 'text', text }] : [])] : text;
  const buildInput = () => {
    if (format === 'completion') return { prompt: text };
    const messages = [];
    if (els.system.value.trim()) messages.push({ role: 'system', content: els.system.value });
    messages.push(...state.history, { role: 'user', content: userContent });
    return { messages };
  };
  els.prompt.value = '';
  const sent = addMessage(format === 'completion' ? 'prompt' : 'user', text);
  if (image) {
    sent.div.append(imageElement(image, 'sent-image', 'your image'));
    setAttachment(null);
  }
  const images = []; // the reply's images (PNG data URLs), kept in the history with its text
  const { div, content } = addMessage('assistant');
  div.classList.add('streaming');
  state.busy = true;
  state.stopRequested = false;
  els.send.disabled = true;
  els.stop.disabled = false;
  setStatus(state.mode === 'server' ? 'generating (server)…' : 'generating (in-browser)…', 'busy');
  const rate = new Rate();
  let reply = '', frame = 0;
  // The first text is painted at once, the rest once per frame, not once per token: writing the
  // whole reply and reading scrollHeight (a forced layout) per token kept the page too busy to
  // hear Stop in long replies.
  const paint = () => {
    cancelAnimationFrame(frame);
    frame = 0;
    content.textContent = reply;
    els.messages.scrollTop = els.messages.scrollHeight;
  };
  const onText = (t) => {
    const first = reply === '';
    reply += t;
    if (first) paint();
    else if (!frame) frame = requestAnimationFrame(paint);
  };
  try {
    // A conversation past the model's context: leave out the oldest turns until it fits.
    let r, dropped = 0;
    for (;;) {
      try {
        const input = buildInput();
        const onImage = (url) => { images.push(url); div.append(imageElement(url, 'generated-image', 'generated image')); };
        r = state.mode === 'server' ? await runServer(input, p, onText, rate, onImage) : await runBrowser(input, p, onText, rate);
        break;
      } catch (e) {
        if (e.code !== 'context_length_exceeded' || format !== 'chat' || reply !== '' || state.history.length < 2) throw e;
        state.history.splice(0, 2);
        dropped++;
      }
    }
    paint();
    rate.render(true);
    if (format === 'chat') {
      const answer = images.length ? [...(reply ? [{ type: 'text', text: reply }] : []), ...images.map((url) => ({ type: 'image_url', image_url: { url } }))] : reply;
      state.history.push({ role: 'user', content: userContent }, { role: 'assistant', content: answer });
    }
    div.dataset.finish = r.finish ?? '';
    const n = r.usage?.completion_tokens ?? rate.n;
    addMeta(div, `${state.mode === 'server' ? 'server' : 'in-browser'} · ${n} tokens · ${rate.rate.toFixed(1)} tok/s · finish: ${r.finish ?? '?'}${dropped ? ` · ${dropped} earlier turn(s) left out to fit the context` : ''}`);
    div.dataset.dropped = String(dropped);
    setStatus('done', 'ready');
  } catch (e) {
    paint();
    div.classList.add('error');
    div.dataset.finish = 'error';
    content.textContent = reply + (reply ? '\n' : '') + `⚠ ${e.message}`;
    setStatus(e.message, 'error');
  } finally {
    div.classList.remove('streaming');
    state.busy = false;
    state.abort = null;
    els.send.disabled = false;
    els.stop.disabled = true;
  }
}

els.form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
els.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
});
els.stop.addEventListener('click', () => { state.stopRequested = true; state.abort?.(); });
els.clear.addEventListener('click', () => {
  if (state.busy) return;
  state.history = [];
  setAttachment(null);
  els.messages.replaceChildren();
  els.tps.textContent = '– tok/s';
});

for (const r of document.querySelectorAll('input[name="mode"]')) {
  r.addEventListener('change', () => {
    if (!r.checked) return;
    state.mode = r.value;
    document.body.dataset.mode = state.mode;
    if (state.mode === 'browser') {
      setStatus('loading the model in the page…', 'busy');
      loadBrowserModel().catch((e) => { if (state.mode === 'browser') setStatus(e.message, 'error'); });
    } else {
      setStatus(state.modelId ? `server: ${state.modelId}` : 'server', 'ready');
    }
  });
}
function setFormat(f) {
  state.format = f;
  document.body.dataset.format = f;
  $(`format-${f}`).checked = true;
}
for (const r of document.querySelectorAll('input[name="format"]')) {
  r.addEventListener('change', () => { if (r.checked) setFormat(r.value); });
}
document.body.dataset.mode = state.mode;
document.body.dataset.format = state.format;
els.info.textContent = `crossOriginIsolated: ${window.crossOriginIsolated}`;

fetch('/v1/models').then(async (res) => {
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const j = await res.json();
  const m = j.data?.[0];
  state.modelId = m?.id ?? null;
  els.model.textContent = state.modelId ?? '(none)';
  if (Number.isInteger(m?.context_length)) {
    state.contextLength = m.context_length;
    els.maxTokens.max = String(Math.max(1, m.context_length - 1));
    els.model.title = `context: ${m.context_length} tokens`;
  }
  // A model without a chat template of its own was trained on plain text: continue text.
  if (m?.chat_template === false) setFormat('completion');
  // A model that reads images (mixed-modal): a PNG can go with a message.
  state.imageInput = Array.isArray(m?.modalities) && m.modalities.includes('image');
  els.attachRow.hidden = !state.imageInput;
  if (state.mode === 'server' && !state.busy) setStatus(`server: ${state.modelId}`, 'ready');
}).catch((e) => { els.model.textContent = `(unavailable: ${e.message})`; });
