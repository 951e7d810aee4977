// The playground's Train tab, in a module Web Worker: tslm's browser build (wasm backend on
// threads sharing one memory when the page is cross-origin isolated, 1 thread otherwise) runs a
// TrainSession — a byte-level BPE tokenizer and a small LLaMA trained on the given text — one
// step at a time, and between steps hears pause/stop, takes samples, saves a checkpoint to
// IndexedDB and builds the downloads.
//
// In:  {type: 'init', threads} · {type: 'start', sources: [{name, text} | {name, bytes}], options}
//      {type: 'pause'} · {type: 'resume'} · {type: 'stop'} · {type: 'sample', id, prompt, params}
//      {type: 'save', id} · {type: 'probe', id} · {type: 'restore', id} · {type: 'export', id, what: 'hf' | 'gguf'}
//      {type: 'logits', id, ids} · {type: 'pauseAt', id, step} (pause once the run reaches that step)
//      {type: 'lora', model: {name, files?}, rows: {name, bytes}, options}
// Out: {type: 'ready', threads, crossOriginIsolated} · {type: 'progress', text} · {type: 'created', info, metrics, state}
//      {type: 'step', m, done} · {type: 'state', state: 'running' | 'paused' | 'stopped' | 'done'}
//      {type: 'reply', id, ...} · {type: 'error', message, id?}

/** @type {typeof import('../dist/src/browser.js')} */
let T = null;
let S = null; // the running session: a TrainSession, or a LoraSession (kind 'lora')
let kind = 'train';
let running = false; // wanted: the loop goes on while this is true
let looping = false; // the loop is between two steps (a pause and a resume can both land there)
let stopped = false;
let pauseAt = 0; // pause when the run reaches this step (0: never)

const DB = 'tslm-playground', STORE = 'checkpoints', KEY = 'train', META = 'train-meta';

// Control messages act at once (the loop reads the flags between steps); the others run in order,
// between steps (each step is synchronous wasm work, so a message can only arrive between two).
let queue = Promise.resolve();
self.onmessage = (e) => {
  const m = e.data;
  if (m.type === 'pause') { running = false; return; }
  if (m.type === 'pauseAt') { pauseAt = m.step; postMessage({ type: 'reply', id: m.id }); return; }
  if (m.type === 'stop') { stopped = true; if (!looping) postMessage({ type: 'state', state: 'stopped' }); running = false; return; }
  queue = queue.then(() => handle(m)).catch((err) => postMessage({ type: 'error', id: m.id, message: String(err?.message ?? err) }));
};

async function handle(m) {
  switch (m.type) {
    case 'init': return init(m.threads);
    case 'start': return start(m.sources, m.options);
    case 'lora': return startLora(m.model, m.rows, m.options);
    case 'resume': if (S && !S.done && !stopped) run(); return;
    case 'sample': return reply(m.id, { text: need().sample(m.prompt, m.params) });
    case 'logits': return reply(m.id, { logits: need().logits(m.ids) });
    case 'save': return reply(m.id, await save());
    case 'probe': return reply(m.id, { meta: await idb('readonly', (s) => s.get(META)) ?? null });
    case 'restore': return restore(m.id);
    case 'export': return exportFiles(m.id, m.what);
  }
}

const reply = (id, body) => postMessage({ type: 'reply', id, ...body });
function need() {
  if (!S) throw new Error('no model yet: start training first');
  return S;
}

async function init(threads) {
  postMessage({ type: 'progress', text: 'loading tslm (wasm backend)…' });
  T = await import('/dist/src/browser.js');
  // Without cross-origin isolation there is no SharedArrayBuffer: one thread, in this worker.
  const n = self.crossOriginIsolated ? threads : 1;
  await T.init({ threads: n });
  postMessage({ type: 'ready', threads: T.backend().threads ?? n, crossOriginIsolated: self.crossOriginIsolated });
}

async function start(sources, options) {
  if (running || looping) throw new Error('a run is in progress: stop it first');
  postMessage({ type: 'progress', text: 'reading the text…' });
  const docs = [];
  for (const s of sources) docs.push(...(s.bytes ? T.documentsFromBytes(s.name, new Uint8Array(s.bytes)) : T.documentsFromText(s.name, s.text)));
  if (!docs.length) throw new Error('no text: paste some or choose a .txt or .jsonl file');
  postMessage({ type: 'progress', text: `training a ${options.config.vocab_size}-token BPE tokenizer on ${docs.reduce((n, d) => n + d.length, 0).toLocaleString()} characters…` });
  S?.dispose();
  S = null;
  S = T.TrainSession.create(docs, options);
  kind = 'train';
  stopped = false;
  postMessage({ type: 'created', info: S.info, metrics: [], state: S.state });
  run();
}

/** Let queued messages in between steps, without setTimeout's clamp. */
const tick = new MessageChannel();
const ticks = [];
tick.port1.onmessage = () => ticks.shift()?.();
const yieldToMessages = () => new Promise((r) => { ticks.push(r); tick.port2.postMessage(0); });

async function run() {
  running = true;
  postMessage({ type: 'state', state: 'running' });
  if (looping) return;
  looping = true;
  try {
    while (running && !S.done) {
      const m = await S.step();
      postMessage({ type: 'step', m, done: S.done });
      if (pauseAt && m.step >= pauseAt) { pauseAt = 0; running = false; }
      await yieldToMessages();
    }
  } catch (e) {
    postMessage({ type: 'error', message: `training stopped: ${e?.message ?? e}` });
    stopped = true;
  } finally {
    running = false;
    looping = false;
  }
  postMessage({ type: 'state', state: S.done ? 'done' : stopped ? 'stopped' : 'paused' });
}

function idb(mode, fn) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onerror = () => reject(new Error(`IndexedDB: ${open.error?.message ?? 'cannot open'}`));
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(STORE, mode);
      const r = fn(tx.objectStore(STORE));
      tx.oncomplete = () => { db.close(); resolve(r?.result); };
      tx.onerror = tx.onabort = () => { db.close(); reject(new Error(`IndexedDB: ${tx.error?.message ?? 'the transaction failed'}`)); };
    };
  });
}

async function save() {
  if (kind === 'lora') throw new Error('checkpoints hold full training runs; download the adapter instead');
  const snap = need().snapshot();
  const meta = { step: snap.state.step, steps: snap.options.steps, savedAt: new Date().toISOString(), bytes: snap.weights.length + snap.optimizer.length + snap.tokens.byteLength };
  await idb('readwrite', (s) => { s.put(snap, KEY); s.put(meta, META); });
  return { meta };
}

async function restore(id) {
  if (running || looping) throw new Error('pause or stop the run before loading the saved checkpoint');
  const snap = await idb('readonly', (s) => s.get(KEY));
  if (!snap) throw new Error('no checkpoint saved in this browser');
  S?.dispose();
  S = null;
  S = T.TrainSession.resume(snap);
  kind = 'train';
  stopped = false;
  postMessage({ type: 'created', info: S.info, metrics: S.metrics, state: S.state, options: S.options });
  reply(id, { step: S.state.step });
  postMessage({ type: 'state', state: S.done ? 'done' : 'paused' });
}

function exportFiles(id, what) {
  const s = need();
  const files = kind === 'lora' ? s.adapterFiles(S.baseName) : what === 'gguf' ? { 'model.gguf': s.gguf() } : s.hfFiles();
  postMessage({ type: 'reply', id, files }, Object.values(files).map((b) => b.buffer));
}

// ---- LoRA fine-tuning of a loaded model -----------------------------------------------------

const utf8 = new TextDecoder();
function json(bytes, name) {
  try { return JSON.parse(utf8.decode(bytes)); } catch (e) { throw new Error(`${name}: not valid JSON (${e.message})`); }
}

/** The model's files: from the server (/playground/model/) or chosen by the user ({name: bytes}). */
async function modelFiles(source) {
  if (source.files) return source.files;
  const out = {};
  for (const name of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
    const r = await fetch(`/playground/model/${name}`);
    if (r.ok) out[name] = await r.arrayBuffer();
    else if (name !== 'tokenizer_config.json') throw new Error(`/playground/model/${name}: HTTP ${r.status} (the server must serve a Hugging Face model directory)`);
  }
  return out;
}

async function startLora(source, rowsFile, options) {
  if (running || looping) throw new Error('a run is in progress: stop it first');
  postMessage({ type: 'progress', text: 'loading the model…' });
  const f = await modelFiles(source);
  for (const n of ['config.json', 'model.safetensors', 'tokenizer.json']) if (!f[n]) throw new Error(`the model needs ${n} (choose config.json, model.safetensors and tokenizer.json together)`);
  const rows = T.instructionRowsFromBytes(rowsFile.name, new Uint8Array(rowsFile.bytes));
  const tokConfig = f['tokenizer_config.json'] ? json(new Uint8Array(f['tokenizer_config.json']), 'tokenizer_config.json') : null;
  const tokenizer = T.tokenizerFromBytes(new Uint8Array(f['tokenizer.json']), 'tokenizer.json', { config: tokConfig });
  const model = T.modelFromBytes(json(new Uint8Array(f['config.json']), 'config.json'), new Uint8Array(f['model.safetensors']));
  const format = {};
  if (tokConfig?.chat_template) {
    const t = T.chatTemplateFromConfig(tokConfig);
    Object.assign(format, { chatTemplate: t.template, bosToken: t.bosToken, eosToken: t.eosToken });
  }
  S?.dispose();
  S = null;
  try {
    S = T.LoraSession.create(model, tokenizer, rows, { ...options, format });
  } catch (e) {
    model.dispose();
    throw e;
  }
  S.baseName = source.name ?? null;
  kind = 'lora';
  stopped = false;
  postMessage({ type: 'created', kind, info: S.info, metrics: [], state: S.state, options: { steps: S.options.steps } });
  run();
}
