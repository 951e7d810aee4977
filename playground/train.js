// The playground's Train tab: text in (pasted or .txt/.md/.jsonl files), a byte-level BPE tokenizer
// and a small LLaMA trained in a Web Worker (train-worker.js), the loss curve, tokens/s and ETA
// drawn here. The page only posts messages and paints (at most once per frame), so it stays
// responsive while the worker trains. Pause/resume/stop, a checkpoint in IndexedDB that survives a
// reload, samples between steps, downloads (HF directory files, GGUF) as Blob links.
// `?threads=N` sets the worker's kernel threads (default: min(4, cores); 1 without isolation).

const $ = (id) => document.getElementById(id);
const els = {
  tabChat: $('tab-chat'), tabTrain: $('tab-train'), chat: $('chat-main'), train: $('train'),
  text: $('train-text'), file: $('train-file'), vocab: $('train-vocab'), hidden: $('train-hidden'), layers: $('train-layers'),
  steps: $('train-steps'), batch: $('train-batch'), seq: $('train-seq'), lr: $('train-lr'), warmup: $('train-warmup'), seed: $('train-seed'),
  start: $('train-start'), pause: $('train-pause'), resume: $('train-resume'), stop: $('train-stop'), save: $('train-save'),
  restore: $('train-restore'), saved: $('train-saved'), status: $('train-status'), canvas: $('train-loss'), stats: $('train-stats'),
  loraRows: $('lora-rows'), loraModel: $('lora-model'), loraR: $('lora-r'), loraAlpha: $('lora-alpha'), loraSteps: $('lora-steps'),
  loraBatch: $('lora-batch'), loraLr: $('lora-lr'), loraSeed: $('lora-seed'), loraStart: $('lora-start'),
  prompt: $('train-prompt'), sample: $('train-sample'), samples: $('train-samples'), exportBtn: $('train-export'), downloads: $('train-downloads'),
};

const st = {
  worker: null, ready: null, threads: 0, state: 'idle', // idle | preparing | running | paused | stopped | done
  kind: 'train', // 'train' (a model from text) | 'lora' (an adapter on a loaded model)
  metrics: [], steps: 0, nextId: 1, pending: new Map(), frame: 0, urls: [], info: null, call: (msg) => call(msg),
};
window.__train = st; // for the console and the tests (st.call(msg) asks the worker)

// ---- tabs ------------------------------------------------------------------------------------

function showTab(name) {
  const train = name === 'train';
  els.chat.hidden = train;
  els.train.hidden = !train;
  els.tabChat.setAttribute('aria-selected', String(!train));
  els.tabTrain.setAttribute('aria-selected', String(train));
  document.body.dataset.tab = name;
  if (train) startWorker();
}
els.tabChat.addEventListener('click', () => showTab('chat'));
els.tabTrain.addEventListener('click', () => showTab('train'));

function setStatus(text, kind = 'idle') {
  els.status.textContent = text;
  els.status.dataset.state = kind;
}

// ---- the worker --------------------------------------------------------------------------------

/** A new run (training or LoRA) in the worker: the worker started, the page's curve, samples and downloads cleared. */
async function beginRun(steps) {
  await startWorker();
  st.metrics = [];
  st.steps = steps;
  st.info = null;
  els.samples.textContent = '';
  clearDownloads();
  setState('preparing');
}

function startWorker() {
  if (st.ready) return st.ready;
  const q = Number(new URLSearchParams(location.search).get('threads'));
  const threads = window.crossOriginIsolated ? (q >= 1 ? Math.min(16, Math.floor(q)) : Math.max(1, Math.min(4, navigator.hardwareConcurrency || 2))) : 1;
  const w = new Worker(new URL('./train-worker.js', import.meta.url), { type: 'module', name: 'tslm-train' });
  st.worker = w;
  w.onmessage = (e) => onMessage(e.data);
  st.ready = new Promise((resolve, reject) => {
    st.onReady = resolve;
    w.addEventListener('error', (e) => reject(new Error(`the training worker failed to start: ${e.message ?? 'module error (see the console)'}`)), { once: true });
  });
  setStatus('loading tslm in the worker…', 'busy');
  w.postMessage({ type: 'init', threads });
  st.ready.then(async (r) => {
    st.threads = r.threads;
    const iso = r.crossOriginIsolated ? '' : ' (the page is not cross-origin isolated, so no SharedArrayBuffer: 1 thread; serve it with COOP same-origin + COEP require-corp for more)';
    setStatus(`ready: wasm backend, ${r.threads} thread${r.threads === 1 ? '' : 's'}${iso}`, 'ready');
    try {
      showSaved((await call({ type: 'probe' })).meta);
    } catch (e) {
      showSaved(null);
      els.saved.textContent = `checkpoints unavailable: ${e.message}`;
    }
  }).catch((e) => setStatus(e.message, 'error'));
  return st.ready;
}

/** A request to the worker answered by a {type: 'reply', id} (or an error with that id). */
function call(msg, transfer = []) {
  const id = st.nextId++;
  return new Promise((resolve, reject) => {
    st.pending.set(id, { resolve, reject });
    st.worker.postMessage({ ...msg, id }, transfer);
  });
}

function onMessage(m) {
  switch (m.type) {
    case 'ready': st.onReady(m); break;
    case 'progress': setStatus(m.text, 'busy'); break;
    case 'created':
      st.kind = m.kind ?? 'train';
      st.info = m.info;
      st.metrics = m.metrics.slice();
      st.steps = m.options?.steps ?? st.steps;
      if (m.options?.config) fillOptions(m.options);
      clearDownloads();
      setStatus(describe(m.info), 'ready');
      paint();
      break;
    case 'step':
      st.metrics.push({ ...m.m, receivedAt: performance.now() });
      if (!st.frame) st.frame = requestAnimationFrame(paint);
      break;
    case 'state': setState(m.state); break;
    case 'reply': {
      const p = st.pending.get(m.id);
      st.pending.delete(m.id);
      p?.resolve(m);
      break;
    }
    case 'error': {
      const p = m.id !== undefined ? st.pending.get(m.id) : null;
      if (p) { st.pending.delete(m.id); p.reject(new Error(m.message)); break; }
      setStatus(m.message, 'error');
      if (st.state === 'preparing') setState('idle');
      break;
    }
  }
}

function describe(info) {
  if (st.kind === 'lora') {
    return `LoRA on a ${(info.parameters / 1e6).toFixed(2)}M-parameter model: ${info.trainable.toLocaleString()} trainable parameters; ${info.rows} rows; ${st.threads} thread${st.threads === 1 ? '' : 's'}`;
  }
  return `model: ${(info.parameters / 1e6).toFixed(2)}M parameters, vocabulary ${info.vocab}; corpus: ${info.tokens.toLocaleString()} tokens`
    + `${info.documents >= 0 ? ` in ${info.documents} document${info.documents === 1 ? '' : 's'}` : ''} (${info.trainSequences} training / ${info.valSequences} validation sequences); ${st.threads} thread${st.threads === 1 ? '' : 's'}`;
}

function setState(s) {
  st.state = s;
  document.body.dataset.trainState = s;
  const has = st.info !== null;
  els.start.disabled = s === 'preparing' || s === 'running';
  els.loraStart.disabled = els.start.disabled;
  els.pause.disabled = s !== 'running';
  els.resume.disabled = s !== 'paused';
  els.stop.disabled = !(s === 'running' || s === 'paused');
  els.save.disabled = !has || s === 'preparing' || s === 'idle' || st.kind === 'lora';
  els.sample.disabled = !has || s === 'preparing' || s === 'idle';
  els.exportBtn.disabled = !has || s === 'preparing' || s === 'idle';
  els.restore.disabled = s === 'running' || s === 'preparing' || !st.savedMeta;
  if (s === 'done') setStatus(`done: ${st.steps} steps`, 'ready');
  if (s === 'paused') setStatus(`paused at step ${st.metrics.length ? st.metrics[st.metrics.length - 1].step : 0}`, 'ready');
  if (s === 'stopped') setStatus(`stopped at step ${st.metrics.length ? st.metrics[st.metrics.length - 1].step : 0} (samples and downloads still work)`, 'ready');
  if (s === 'running') setStatus(`training on ${st.threads} thread${st.threads === 1 ? '' : 's'}…`, 'busy');
  paint();
}

// ---- options and input -----------------------------------------------------------------------

function num(el, name, { min = -Infinity, max = Infinity, int = true } = {}) {
  const v = Number(el.value);
  if (el.value.trim() === '' || !Number.isFinite(v) || v < min || v > max || (int && !Number.isInteger(v))) {
    throw new Error(`${name} must be ${int ? 'an integer' : 'a number'} from ${min} to ${max}`);
  }
  return v;
}

function readOptions() {
  const hidden = num(els.hidden, 'hidden size', { min: 16, max: 1024 });
  if (hidden % 32) throw new Error('hidden size must be a multiple of 32 (4 heads of a size divisible by 8)');
  const seqLen = num(els.seq, 'sequence length', { min: 8, max: 2048 });
  const config = {
    // SwiGLU width 8/3·hidden rounded to 8 (344 for 128: the quickstart's LLaMA)
    model_type: 'llama', hidden_size: hidden, intermediate_size: Math.round((hidden * 8) / 3 / 8) * 8,
    num_hidden_layers: num(els.layers, 'layers', { min: 1, max: 24 }), num_attention_heads: 4, num_key_value_heads: 2,
    vocab_size: num(els.vocab, 'vocabulary', { min: 260, max: 65000 }), max_position_embeddings: seqLen, rms_norm_eps: 1e-5, tie_word_embeddings: true,
  };
  return {
    config, steps: num(els.steps, 'steps', { min: 1, max: 1e6 }), batchSize: num(els.batch, 'batch', { min: 1, max: 256 }), seqLen,
    lr: num(els.lr, 'learning rate', { min: 1e-7, max: 1, int: false }), warmupSteps: num(els.warmup, 'warmup steps', { min: 0, max: 1e6 }),
    seed: num(els.seed, 'seed', { min: 0, max: 2 ** 31 }),
  };
}

function fillOptions(o) {
  els.vocab.value = o.config.vocab_size; els.hidden.value = o.config.hidden_size; els.layers.value = o.config.num_hidden_layers;
  els.steps.value = o.steps; els.batch.value = o.batchSize; els.seq.value = o.seqLen; els.lr.value = o.lr; els.warmup.value = o.warmupSteps; els.seed.value = o.seed;
}

async function start() {
  let options;
  try { options = readOptions(); } catch (e) { setStatus(e.message, 'error'); return; }
  const sources = [];
  const transfer = [];
  for (const f of els.file.files) {
    const bytes = await f.arrayBuffer();
    sources.push({ name: f.name, bytes });
    transfer.push(bytes);
  }
  if (els.text.value.trim()) sources.push({ name: 'the pasted text', text: els.text.value });
  else if (els.text.value.length && !sources.length) { setStatus('the pasted text is only white space', 'error'); return; }
  if (!sources.length) { setStatus('no text: paste some above or choose a .txt, .md or .jsonl file', 'error'); return; }
  await beginRun(options.steps);
  try {
    st.worker.postMessage({ type: 'start', sources, options }, transfer);
  } catch (e) { setStatus(e.message, 'error'); setState('idle'); }
}

els.start.addEventListener('click', start);

async function startLora() {
  let options;
  try {
    options = {
      r: num(els.loraR, 'rank r', { min: 1, max: 256 }), loraAlpha: num(els.loraAlpha, 'alpha', { min: 1, max: 1024, int: false }),
      steps: num(els.loraSteps, 'steps', { min: 1, max: 1e5 }), batchSize: num(els.loraBatch, 'batch', { min: 1, max: 256 }),
      lr: num(els.loraLr, 'learning rate', { min: 1e-7, max: 1, int: false }), seed: num(els.loraSeed, 'seed', { min: 0, max: 2 ** 31 }),
    };
  } catch (e) { setStatus(e.message, 'error'); return; }
  const rowsFile = els.loraRows.files[0];
  if (!rowsFile) { setStatus('choose a .jsonl file of Alpaca or chat rows to fine-tune on', 'error'); return; }
  const transfer = [];
  const rows = { name: rowsFile.name, bytes: await rowsFile.arrayBuffer() };
  transfer.push(rows.bytes);
  let model = { name: null };
  if (els.loraModel.files.length) {
    const files = {};
    for (const f of els.loraModel.files) { files[f.name] = await f.arrayBuffer(); transfer.push(files[f.name]); }
    model = { name: null, files };
  } else {
    model = { name: document.getElementById('model-name')?.textContent || null };
  }
  await beginRun(options.steps);
  st.worker.postMessage({ type: 'lora', model, rows, options }, transfer);
}
els.loraStart.addEventListener('click', startLora);
els.pause.addEventListener('click', () => st.worker?.postMessage({ type: 'pause' }));
els.resume.addEventListener('click', () => st.worker?.postMessage({ type: 'resume' }));
els.stop.addEventListener('click', () => st.worker?.postMessage({ type: 'stop' }));

// ---- checkpoint in IndexedDB ----------------------------------------------------------------

function showSaved(meta) {
  st.savedMeta = meta;
  els.saved.textContent = meta ? `saved: step ${meta.step} of ${meta.steps}, ${new Date(meta.savedAt).toLocaleString()} (${(meta.bytes / 1e6).toFixed(1)} MB)` : 'no saved checkpoint';
  els.saved.dataset.step = meta ? String(meta.step) : '';
  els.restore.disabled = !meta || st.state === 'running' || st.state === 'preparing';
}

els.save.addEventListener('click', async () => {
  try { showSaved((await call({ type: 'save' })).meta); } catch (e) { setStatus(`saving failed: ${e.message}`, 'error'); }
});
els.restore.addEventListener('click', async () => {
  try {
    const r = await call({ type: 'restore' });
    setStatus(`loaded the checkpoint of step ${r.step}: press Resume to go on`, 'ready');
  } catch (e) { setStatus(`loading failed: ${e.message}`, 'error'); }
});

// ---- samples and downloads ----------------------------------------------------------------------

els.sample.addEventListener('click', async () => {
  try {
    const step = st.metrics.length ? st.metrics[st.metrics.length - 1].step : 0;
    const r = await call({ type: 'sample', prompt: els.prompt.value, params: { maxNewTokens: 60, temperature: 0.8, seed: step } });
    els.samples.textContent = `[step ${step}] ${els.prompt.value}${r.text}\n` + els.samples.textContent;
  } catch (e) { setStatus(`sampling failed: ${e.message}`, 'error'); }
});

function clearDownloads() {
  for (const u of st.urls) URL.revokeObjectURL(u);
  st.urls = [];
  els.downloads.replaceChildren();
}

els.exportBtn.addEventListener('click', async () => {
  clearDownloads();
  try {
    const step = st.metrics.length ? st.metrics[st.metrics.length - 1].step : 0;
    const files = {};
    for (const what of st.kind === 'lora' ? ['adapter'] : ['hf', 'gguf']) Object.assign(files, (await call({ type: 'export', what })).files);
    for (const [name, bytes] of Object.entries(files)) {
      const url = URL.createObjectURL(new Blob([bytes], { type: name.endsWith('.json') ? 'application/json' : 'application/octet-stream' }));
      st.urls.push(url);
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      a.textContent = `${name} (${bytes.length >= 1e6 ? `${(bytes.length / 1e6).toFixed(1)} MB` : `${(bytes.length / 1e3).toFixed(1)} kB`})`;
      a.dataset.testid = `download-${name}`;
      els.downloads.append(a);
    }
    els.downloads.dataset.step = String(step);
  } catch (e) { setStatus(`export failed: ${e.message}`, 'error'); }
});

// ---- the loss curve and the numbers ---------------------------------------------------------------

function paint() {
  cancelAnimationFrame(st.frame);
  st.frame = 0;
  const ms = st.metrics;
  const last = ms[ms.length - 1];
  if (last) {
    // tokens/s over the last 10 steps (steps of equal size: the harmonic mean of their rates); the ETA from it
    const k = ms.slice(-10);
    const rate = k.length / k.reduce((s, m) => s + 1 / Math.max(m.tokensPerSecond, 1e-9), 0);
    const perStep = last.tokens / Math.max(1, last.step);
    const eta = rate > 0 ? ((st.steps - last.step) * perStep) / rate : 0;
    els.stats.textContent = `step ${last.step} / ${st.steps} · loss ${last.loss.toFixed(4)} · ${Math.round(rate).toLocaleString()} tokens/s · ETA ${fmtTime(eta)} · elapsed ${fmtTime(last.elapsedSeconds)}`;
    els.stats.dataset.step = String(last.step);
    els.stats.dataset.loss = String(last.loss);
    els.stats.dataset.rate = rate.toFixed(1);
    els.stats.dataset.eta = eta.toFixed(1);
  } else {
    els.stats.textContent = '–';
    els.stats.dataset.step = '0';
  }
  drawCurve(ms);
}

function fmtTime(s) {
  if (!Number.isFinite(s) || s <= 0) return '0 s';
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function drawCurve(ms) {
  const c = els.canvas, g = c.getContext('2d');
  const W = c.width, H = c.height, L = 46, R = 10, Tp = 10, B = 26;
  g.clearRect(0, 0, W, H);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#6e6e73';
  g.strokeStyle = '#d2d2d7';
  g.strokeRect(L, Tp, W - L - R, H - Tp - B);
  if (!ms.length) { g.fillText('the training loss appears here', L + 10, Tp + 20); return; }
  let lo = Infinity, hi = -Infinity;
  for (const m of ms) { if (m.loss < lo) lo = m.loss; if (m.loss > hi) hi = m.loss; } // (NaN compares false)
  if (hi - lo < 1e-6) { hi += 0.5; lo -= 0.5; }
  const n = Math.max(st.steps, ms[ms.length - 1].step);
  const x = (s) => L + ((s - 1) / Math.max(1, n - 1)) * (W - L - R);
  const y = (v) => Tp + ((hi - v) / (hi - lo)) * (H - Tp - B);
  g.fillText(hi.toFixed(2), 4, Tp + 8);
  g.fillText(lo.toFixed(2), 4, H - B);
  g.fillText('step 1', L, H - 8);
  g.fillText(`${n}`, W - R - 30, H - 8);
  g.fillText('training loss', L + 6, Tp + 14);
  g.strokeStyle = '#0b63ce';
  g.lineWidth = 1.5;
  g.beginPath();
  // At most ~2 points per pixel column: a long run stays cheap to draw.
  const stride = Math.max(1, Math.floor(ms.length / (2 * (W - L - R))));
  let started = false;
  for (let i = 0; i < ms.length; i += stride) {
    const m = ms[i];
    if (!Number.isFinite(m.loss)) continue; // (a fine-tuning batch with no response token)
    if (!started) g.moveTo(x(m.step), y(m.loss)); else g.lineTo(x(m.step), y(m.loss));
    started = true;
  }
  const lastM = ms[ms.length - 1];
  if (started && Number.isFinite(lastM.loss)) g.lineTo(x(lastM.step), y(lastM.loss));
  g.stroke();
}

setState('idle');
drawCurve([]);
if (location.hash === '#train') showTab('train');
