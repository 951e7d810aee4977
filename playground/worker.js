// The playground's in-browser model, in a module Web Worker: tslm's browser build with the wasm
// backend on threads (a cross-origin-isolated page), the served model's config.json,
// model.safetensors, tokenizer.json and tokenizer_config.json fetched from /playground/model/,
// the chat template rendered here, tokens posted back one by one.
//
// Messages in:  {type: 'load', threads} · {type: 'generate', id, messages, params} · {type: 'stop', id}
// Messages out: {type: 'progress', text} · {type: 'ready', info} · {type: 'error', message, id?}
//               {type: 'token', id, tokenId, text} · {type: 'done', id, finishReason, usage, stats}

/** @type {typeof import('../dist/src/browser.js')} */
let T = null;
let M = null; // { model, tokenizer, template, stopIds, config }
const stopped = new Set();
let queue = Promise.resolve();

// Handle messages in order (generation awaits between steps, so a 'stop' can arrive meanwhile).
self.onmessage = (e) => {
  const m = e.data;
  if (m.type === 'stop') { stopped.add(m.id); return; }
  queue = queue.then(() => handle(m)).catch((err) => postMessage({ type: 'error', id: m.id, message: String(err?.message ?? err), code: err?.code }));
};

async function handle(m) {
  if (m.type === 'load') return load(m.threads);
  if (m.type === 'generate') return generate(m.id, m.messages, m.params, m.prompt);
}

async function fetchBytes(name, optional = false) {
  const url = `/playground/model/${name}`;
  const r = await fetch(url);
  if (!r.ok) {
    if (optional && r.status === 404) return null;
    throw new Error(`${url}: HTTP ${r.status}${r.status === 404 ? ' (in-browser mode needs the server to serve a Hugging Face model directory with this file)' : ''}`);
  }
  return new Uint8Array(await r.arrayBuffer());
}

const utf8 = new TextDecoder();
const json = (bytes, name) => {
  try { return JSON.parse(utf8.decode(bytes)); } catch (e) { throw new Error(`${name}: not valid JSON (${e.message})`); }
};

// A plain transcript when the model has no chat template.
const FALLBACK_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

async function load(threads) {
  const t0 = performance.now();
  if (!self.crossOriginIsolated) throw new Error('the page is not cross-origin isolated, so SharedArrayBuffer (and the threaded wasm backend) is unavailable; serve it with COOP same-origin and COEP require-corp');
  try {
    postMessage({ type: 'progress', text: 'loading tslm (wasm backend)…' });
    T = await import('/dist/src/browser.js');
    await T.init({ threads });
    postMessage({ type: 'progress', text: 'fetching the model…' });
    const [cfgB, weights, tokB, tokCfgB] = await Promise.all([
      fetchBytes('config.json'), fetchBytes('model.safetensors'), fetchBytes('tokenizer.json'), fetchBytes('tokenizer_config.json', true),
    ]);
    postMessage({ type: 'progress', text: 'building the model…' });
    const config = json(cfgB, 'config.json');
    const tokConfig = tokCfgB ? json(tokCfgB, 'tokenizer_config.json') : null;
    const tokenizer = T.tokenizerFromBytes(tokB, 'tokenizer.json', { config: tokConfig });
    const model = T.modelFromBytes(config, weights, { source: 'model.safetensors' });
    let template = { template: FALLBACK_TEMPLATE, bosToken: '', eosToken: '' };
    if (tokConfig?.chat_template) template = T.chatTemplateFromConfig(tokConfig);
    // Stop at EOS (config and tokenizer) and at the usual end-of-turn tokens the vocabulary has.
    const stopIds = new Set();
    const eos = config.eos_token_id;
    for (const id of Array.isArray(eos) ? eos : eos == null ? [] : [eos]) stopIds.add(id);
    if (tokenizer.eosId != null) stopIds.add(tokenizer.eosId);
    for (const t of ['<|im_end|>', '<|eot_id|>', '<|end|>', '<end_of_turn>', '</s>', template.eosToken]) {
      const id = t ? tokenizer.tokenToId?.(t) : undefined;
      if (id !== undefined) stopIds.add(id);
    }
    M = { model, tokenizer, template, stopIds: [...stopIds], config };
    let params = 0;
    for (const [, p] of model.namedTensors()) params += p.shape.reduce((a, b) => a * b, 1);
    postMessage({
      type: 'ready',
      info: {
        modelType: config.model_type ?? 'llama', params, layers: config.num_hidden_layers, vocab: tokenizer.vocabSize,
        threads: T.backend().threads ?? threads, crossOriginIsolated: self.crossOriginIsolated, loadMs: Math.round(performance.now() - t0),
      },
    });
  } catch (e) {
    postMessage({ type: 'error', message: `in-browser model: ${e?.message ?? e}` });
  }
}

/**
 * Let queued messages (a stop) in: a task posted through a MessageChannel runs after the messages
 * already queued, with none of setTimeout's 4 ms clamp, so it can be done after every token.
 */
const tick = new MessageChannel();
const ticks = [];
tick.port1.onmessage = () => ticks.shift()?.();
function yieldToMessages() {
  return new Promise((r) => { ticks.push(r); tick.port2.postMessage(0); });
}

async function generate(id, messages, p, completion) {
  if (!M) throw new Error('the in-browser model is not loaded');
  const { model, tokenizer, template } = M;
  let ids;
  if (completion !== undefined) {
    // Plain completion, as the server's /v1/completions: BOS, then the text.
    ids = [tokenizer.bosId ?? M.config.bos_token_id ?? 1, ...tokenizer.encode(completion)];
  } else {
    const prompt = T.applyChatTemplate(messages, { template: template.template, addGenerationPrompt: true, bosToken: template.bosToken, eosToken: template.eosToken });
    ids = tokenizer.encode(prompt);
  }
  if (ids.length === 0) ids = [tokenizer.bosId ?? 0];
  // Never past the model's context: max_tokens (or, when empty, all the room there is) is cut to
  // what the context leaves after the prompt.
  const room = model.contextLength - ids.length;
  if (room <= 0) throw Object.assign(new Error(`the prompt has ${ids.length} tokens; the model's context is ${model.contextLength} (press Clear to start a new conversation)`), { code: 'context_length_exceeded' });
  const maxNewTokens = Math.min(p.max_tokens ?? Math.min(room, 512), room);
  const processors = [];
  if (p.schema) {
    const grammar = T.compileJsonSchema(p.schema);
    const vocab = T.TokenVocab.fromTokenizer(tokenizer);
    processors.push(new T.ConstraintProcessor(new T.TokenMatcher(grammar, vocab), { maxNewTokens }));
  }
  let n = 0;
  const opts = {
    maxNewTokens,
    temperature: p.temperature ?? 0.8,
    topP: p.top_p,
    seed: p.seed ?? Math.floor(Math.random() * 2 ** 31),
    stopIds: M.stopIds,
    tokenizer,
    processors,
    onToken: (ev) => {
      if (ev.id >= 0) n++;
      postMessage({ type: 'token', id, tokenId: ev.id, text: ev.text });
    },
  };
  const g = new T.Generation(model, ids, opts);
  let finishReason;
  try {
    while (g.step()) {
      if (stopped.has(id)) { g.cancel(); finishReason = 'stopped'; break; }
      await yieldToMessages();
    }
  } finally {
    g.cancel();
    stopped.delete(id);
  }
  const r = g.result();
  postMessage({
    type: 'done', id, finishReason: finishReason ?? r.finishReason[0],
    usage: { prompt_tokens: ids.length, completion_tokens: r.ids[0].length, total_tokens: ids.length + r.ids[0].length },
    stats: r.stats,
  });
}
