// The models a server offers: the one given with --model, and (with --models-dir) every model
// directory or checkpoint file directly inside that directory, loaded on first use. A request
// names a model by id; only ids in the listing resolve, and their real paths must lie inside the
// models directory, so a request cannot reach any other file (`../`, absolute paths, symlinks).
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { loadModel } from '../io/model.js';
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer, EncodeOptions } from '../tokenizers/tokenizer.js';
import type { TokenizerSource, LoadDType } from '../io/model.js';
import type { KVDType } from '../models/llama.js';
import { TokenizerThread, encodeTexts } from './tokenize.js';
import { chatTemplateFromConfig, CHATML_TEMPLATE } from '../tokenizers/chat.js';
import { readTokenizerConfig } from '../tokenizers/load.js';
import { TokenVocab, tokenBytes } from '../structured/vocab.js';
import { TokenMatcher } from '../structured/matcher.js';
import type { Grammar } from '../structured/grammar.js';
import { DecodeBatch } from '../generate/batch.js';
import type { SpeculativeOptions } from '../generate/stepped.js';
import { ApiError, internalError } from './errors.js';
import { loadMixedModal } from '../vision/mixed_train.js';
import type { MixedVocab } from '../vision/mixed.js';
import type { ImageTokenizer } from '../vision/tokenizer.js';

export interface ChatFormat {
  template: string;
  bosToken: string;
  eosToken: string;
  /** Whether the template came from the model (false: ChatML fallback). */
  own: boolean;
}

export class ServedModel {
  /** Requests using the model now (a model in use is never unloaded). */
  refs = 0;
  lastUsed = Date.now();
  readonly created = Math.floor(Date.now() / 1000);
  private vocab_: TokenVocab | null = null;
  private batch_: DecodeBatch | null = null;
  /** The scheduler turn in which the batch last stepped (it steps once per turn). */
  lastTurn = -1;
  private readonly matchers = new Map<string, TokenMatcher>();
  private readonly compiling = new Map<string, Promise<TokenMatcher>>();
  /** The speculative decoding the model is served with (RegistryOptions.speculative), or null. */
  speculative: SpeculativeOptions | null = null;
  /** A mixed-modal model's vocabulary layout and image tokenizer (image content parts in and out), or null. */
  mixed: { vocab: MixedVocab; imageTokenizer: ImageTokenizer } | null = null;

  constructor(
    readonly id: string,
    readonly path: string,
    readonly model: CausalLM,
    readonly tokenizer: Tokenizer | null,
    readonly chat: ChatFormat,
    /** The HF directory the model was read from (the playground's in-browser mode fetches it). */
    readonly hfDir: string | null,
    /** Where the tokenizer came from: long prompts are tokenised by a copy of it on a worker thread. */
    readonly tokenizerSource: TokenizerSource | null = null,
  ) {}

  private thread_: TokenizerThread | null = null;
  /** The worker thread that tokenises this model's long texts (started on first use; null without a tokenizer source). */
  get tokenizerThread(): TokenizerThread | null {
    if (!this.thread_ && this.tokenizerSource) this.thread_ = new TokenizerThread(this.tokenizerSource);
    return this.thread_;
  }

  /** `tokenizer.encode` of each text, on the worker thread when they are long (see tokenize.ts). */
  encode(texts: string[], opts: EncodeOptions = {}): Promise<number[][]> {
    return encodeTexts(this.tokenizer!, this.tokenizerThread, texts, opts);
  }

  get contextLength(): number { return this.model.contextLength; }

  private maxTokenBytes_ = 0;
  /**
   * The most bytes of text one token stands for (the longest token, special tokens included): a
   * prompt of more than contextLength × this many UTF-8 bytes cannot fit, and is refused without
   * being tokenised.
   */
  get maxTokenBytes(): number {
    if (this.maxTokenBytes_ === 0 && this.tokenizer) {
      let max = 1;
      for (const b of tokenBytes(this.tokenizer)) if (b && b.length > max) max = b.length;
      for (const s of this.tokenizer.specialTokens.keys()) max = Math.max(max, Buffer.byteLength(s));
      this.maxTokenBytes_ = max;
    }
    return this.maxTokenBytes_ || 1;
  }

  /** Ids that end an assistant turn: the tokenizer's EOS and the template's end-of-turn token. */
  get stopIds(): number[] {
    const t = this.tokenizer;
    const ids = new Set<number>(this.model.config.eos_token_id ?? []);
    if (t?.eosId !== null && t?.eosId !== undefined) ids.add(t.eosId);
    const eot = t?.specialTokens.get(this.chat.eosToken);
    if (eot !== undefined) ids.add(eot);
    return [...ids];
  }

  /** The vocabulary as the constraint engine sees it, with every stop id as an end token. */
  vocab(): TokenVocab {
    if (!this.vocab_) {
      if (!this.tokenizer) throw new ApiError(400, `model '${this.id}' has no tokenizer; constrained output needs one`);
      const base = TokenVocab.fromTokenizer(this.tokenizer);
      this.vocab_ = base.withEos([...new Set([...base.eosIds, ...this.stopIds])]);
    }
    return this.vocab_;
  }

  /**
   * A token matcher for a grammar, cached by `key` (the constraint's JSON): a schema sent again
   * reuses the masks already computed for it. The grammar is compiled asynchronously (`compile`);
   * concurrent requests with the same key share one compilation, and a failed one is not cached.
   */
  matcher(key: string, compile: () => Promise<Grammar>, maskTimeMs?: number): Promise<TokenMatcher> {
    const m = this.matchers.get(key);
    if (m) { this.matchers.delete(key); this.matchers.set(key, m); return Promise.resolve(m); }
    let p = this.compiling.get(key);
    if (!p) {
      p = compile().then((g) => {
        const made = new TokenMatcher(g, this.vocab(), maskTimeMs === undefined ? {} : { maskTimeMs });
        this.matchers.set(key, made);
        if (this.matchers.size > 32) this.matchers.delete(this.matchers.keys().next().value!);
        return made;
      }).finally(() => this.compiling.delete(key));
      this.compiling.set(key, p);
    }
    return p;
  }

  /** Compilations running now (for tests and /health). */
  get compilingCount(): number { return this.compiling.size; }

  /**
   * The running batch that concurrent requests share (continuous batching): `rows` sequences at
   * once, `positions` cache columns (capped so the cache stays small for long-context models).
   */
  batch(rows: number, positions: number): DecodeBatch {
    if (!this.batch_) this.batch_ = new DecodeBatch(this.model, rows, Math.min(this.contextLength, positions));
    return this.batch_;
  }

  /** Model calls and rows of the running batch (null before the first batched request). */
  get batchStats(): { calls: number; rows: number } | null {
    return this.batch_ ? { calls: this.batch_.calls, rows: this.batch_.runningRows } : null;
  }

  dispose(): void {
    void this.thread_?.close();
    this.batch_?.dispose();
    this.model.dispose();
  }
}

export interface RegistryOptions {
  /** A model served under `modelId` (default: its file or directory name). */
  model?: string;
  modelId?: string;
  /** A directory whose direct entries are models that requests may name. */
  modelsDir?: string;
  /** Tokenizer file for --model (when it has none of its own). */
  tokenizer?: string;
  /** Weights in memory for every model (loadModel's dtype: as stored, f32, or quantised on load). */
  dtype?: LoadDType;
  /** The KV caches' element type for every model (loadModel's kvDtype). */
  kvDtype?: KVDType;
  /**
   * Models kept in memory at once (least recently used unloaded first; default 2). The --model
   * model counts, but is never unloaded.
   */
  maxLoaded?: number;
  /**
   * Speculative decoding for the default model (--model): called once it is loaded, with it;
   * what it returns (Medusa heads, a draft model, prompt lookup) serves every request of n = 1.
   */
  speculative?: (model: CausalLM) => Promise<SpeculativeOptions | null> | SpeculativeOptions | null;
  /** Where the details of internal errors go (default: console.error); clients get only an id. */
  errorLog?: (line: string) => void;
}

function isModelEntry(p: string): boolean {
  try {
    const st = statSync(p);
    if (st.isDirectory()) return existsSync(path.join(p, 'config.json'));
    return st.isFile() && (p.endsWith('.gguf') || p.endsWith('.bin'));
  } catch {
    return false;
  }
}

export class ModelRegistry {
  private readonly loaded = new Map<string, ServedModel>();
  private readonly loading = new Map<string, Promise<ServedModel>>();
  readonly defaultId: string | null;
  private readonly modelsDir: string | null;

  constructor(readonly opts: RegistryOptions) {
    if (!opts.model && !opts.modelsDir) throw new Error('give a model (--model) or a models directory (--models-dir)');
    this.defaultId = opts.model ? (opts.modelId ?? path.basename(path.resolve(opts.model))) : null;
    this.modelsDir = opts.modelsDir ? realpathSync(opts.modelsDir) : null;
    if (this.modelsDir && !statSync(this.modelsDir).isDirectory()) throw new Error(`${opts.modelsDir}: not a directory`);
  }

  /** Ids of every model that can be requested. */
  ids(): string[] {
    const out: string[] = [];
    if (this.defaultId) out.push(this.defaultId);
    if (this.modelsDir) {
      for (const name of readdirSync(this.modelsDir).sort()) {
        if (name.startsWith('.') || out.includes(name)) continue;
        const p = path.join(this.modelsDir, name);
        if (isModelEntry(p) && this.inside(p)) out.push(name);
      }
    }
    return out;
  }

  /** Whether a path's real location (symlinks followed) lies inside the models directory. */
  private inside(p: string): boolean {
    try {
      const rel = path.relative(this.modelsDir!, realpathSync(p));
      return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
    } catch {
      return false;
    }
  }

  /** Load the default model now (the server starts only once it is ready). */
  async init(): Promise<ServedModel | null> {
    if (!this.defaultId) return null;
    // Errors here go to the person starting the server, as the loader words them.
    return this.loadFrom(this.defaultId, this.resolve(this.defaultId));
  }

  /** The model a request names (undefined or '' = the default), held until release(). */
  async acquire(id: string | undefined | null): Promise<ServedModel> {
    const name = id || this.defaultId;
    if (!name) throw new ApiError(400, 'no model given and the server has no default model', 'invalid_request_error', 'model', 'model_not_found');
    let m = this.loaded.get(name);
    if (!m) {
      let p = this.loading.get(name);
      if (!p) {
        p = this.load(name).finally(() => this.loading.delete(name));
        this.loading.set(name, p);
      }
      m = await p;
    }
    m.refs++;
    m.lastUsed = Date.now();
    return m;
  }

  release(m: ServedModel): void {
    m.refs = Math.max(0, m.refs - 1);
    this.evict();
  }

  private resolve(name: string): string {
    if (name === this.defaultId) return this.opts.model!;
    const unknown = () => new ApiError(404, `The model '${name}' does not exist`, 'invalid_request_error', 'model', 'model_not_found');
    if (!this.modelsDir || typeof name !== 'string' || name.includes('\0') || name.includes('/') || name.includes('\\') || name === '.' || name === '..') throw unknown();
    if (!this.ids().includes(name)) throw unknown();
    const p = path.join(this.modelsDir, name);
    if (!this.inside(p)) throw unknown();
    return realpathSync(p);
  }

  private async load(name: string): Promise<ServedModel> {
    const p = this.resolve(name);
    try {
      return await this.loadFrom(name, p);
    } catch (e) {
      if (e instanceof ApiError) throw e;
      // The loader's message may quote the model's files: the client gets an id, the log the rest.
      const err = internalError(e, this.opts.errorLog);
      throw new ApiError(500, `the model '${name}' cannot be loaded: ${err.message}`, 'server_error', 'model', 'model_load_failed');
    }
  }

  private async loadFrom(name: string, p: string): Promise<ServedModel> {
    const { model, tokenizer, tokenizerSource, format } = await loadModel(p, { dtype: this.opts.dtype, kvDtype: this.opts.kvDtype, ...(name === this.defaultId && this.opts.tokenizer ? { tokenizer: this.opts.tokenizer } : {}) });
    model.eval();
    const dir = format === 'hf' ? p : path.dirname(p);
    const cfgFile = path.join(dir, 'tokenizer_config.json');
    let chat: ChatFormat = { template: CHATML_TEMPLATE, bosToken: '', eosToken: '<|im_end|>', own: false };
    if (existsSync(cfgFile)) {
      const c = readTokenizerConfig(cfgFile);
      if (c.chat_template) chat = { ...chatTemplateFromConfig(c, 'default', cfgFile), own: true };
    }
    const m = new ServedModel(name, p, model, tokenizer, chat, format === 'hf' ? p : null, tokenizerSource);
    if (format === 'hf') m.mixed = await loadMixedModal(p);
    // The vocabulary as constraints see it (token bytes, trie, plain-token index) is built now,
    // with the model: built by the first request with a schema, it held up every other request
    // (0.4–0.8 s for a 32K vocabulary).
    if (tokenizer) { try { void m.vocab().plain; } catch { /* a constrained request will name the fault */ } }
    if (name === this.defaultId && this.opts.speculative) m.speculative = await this.opts.speculative(model);
    this.loaded.set(name, m);
    this.evict();
    return m;
  }

  private evict(): void {
    const max = this.opts.maxLoaded ?? 2;
    if (this.loaded.size <= max) return;
    // The --model model is never unloaded (the playground's model files and requests without a
    // model name need it); the others go least recently used first, once idle.
    const idle = [...this.loaded.values()].filter((m) => m.refs === 0 && m.id !== this.defaultId).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const m of idle) {
      if (this.loaded.size <= max) break;
      this.loaded.delete(m.id);
      m.dispose();
    }
  }

  /** The models in memory now. */
  get loadedModels(): ServedModel[] { return [...this.loaded.values()]; }

  /** The loaded default model (for the playground's model files). */
  get defaultModel(): ServedModel | null { return this.defaultId ? this.loaded.get(this.defaultId) ?? null : null; }

  dispose(): void {
    for (const m of this.loaded.values()) m.dispose();
    this.loaded.clear();
  }
}
