// Medusa decoding (Cai et al. 2024): K extra heads read the base model's last hidden state and
// guess the tokens 2…K+1 positions ahead; their top-k guesses, arranged as a sparse tree
// (`medusa_choices`), are verified by the base model in ONE forward pass with a tree attention
// mask (ForwardOptions.tree), and the longest accepted path is kept (DecodeState.compact).
//
// One step, with `pending` the token the base model chose last (not yet fed):
//   tree   = [pending] + the candidates of medusa_choices: path [i0, …, id] is the i_d-th most
//            likely token of head d under the node of path [i0, …, i(d−1)] (head 0 under the root)
//   logits = base(tree, state, { tree })          one forward, every node's next-token logits
//   walk   from the root: choose the next token from the current node's logits as plain decoding
//          would; while a child of the node carries that token, move to it (accepted); the first
//          token that no child carries becomes the next `pending`
//   keep   the root-to-node path in the state; the heads read the hidden state of its last node.
// Acceptance 'exact' (the default) chooses each token exactly as plain decoding does (Sequence.take:
// processors, then argmax or a sample), so greedy output is plain greedy output and sampled
// output has the plain sampling distribution (a candidate is a point-mass draft: accepted iff the
// draw equals it). 'typical' is Medusa's typical acceptance: a child is accepted when its
// probability under the processed distribution exceeds min(posterior_threshold,
// posterior_alpha · exp(−entropy)); the deepest path accepted throughout is kept (ties: the
// likeliest), as the Medusa repo keeps the longest accepted candidate — faster at high
// temperature, no longer exact.
import { Tensor } from '../tensor/tensor.js';
import * as T from '../tensor/ops.js';
import { scope } from '../tensor/storage.js';
import { noGrad } from '../tensor/autograd.js';
import { Generator } from '../tensor/random.js';
import type { CausalLM, DecodeState } from '../models/causal.js';
import { Sequence, buildProcessors, logSumExp, prepareRequest, resultOf, rowsOf } from './generate.js';
import type { LogitsProcessor } from './processors.js';
import type { GenerateOptions, GenerationResult } from './generate.js';
import { sampleFrom } from './sample.js';
import { lookupMatch, LOOKUP_NUM_DRAFT } from './speculative.js';
import type { SpeculativeStats, SpeculativeResult, SteppedGeneration } from './stepped.js';

/** What tree decoding needs of Medusa heads: K heads mapping hidden states (…, D) to logits (…, V). */
export interface MedusaHeadsLike {
  readonly numHeads: number;
  forward(h: Tensor): Tensor[];
  /** Head k alone (optional: lets decoding skip the heads its tree does not use). */
  forwardHead?(h: Tensor, k: number): Tensor;
  /**
   * Heads ks on one hidden state, (ks.length, V) (optional: one call for the heads a tree uses;
   * MedusaHeads run their tied heads through one product with the base head).
   */
  forwardMany?(h: Tensor, ks: readonly number[]): Tensor;
}

/** A malformed medusa_choices (named entry and fault). */
export class MedusaChoicesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MedusaChoicesError';
  }
}

/**
 * The default tree: the chain of the first three heads' best guesses (a fourth head, if any, is
 * not run). On a CPU verifying a token costs compute (a step of T tokens costs about T/2.5
 * decoding steps beyond the first few: the matmuls stop being memory-bound), so the branches of
 * a GPU tree cost more than they gain, and so does the end of a long chain: on the
 * stories15M-shape model a chain of 4 beat a 7-candidate tree, and a chain of 3 (T = 4, ≈ 1.87
 * decoding steps with its heads) beat the chain of 4 (T = 5, ≈ 2.25) by 5–8% on the bench's
 * grounded prompt and matched it on the open one, accepting 2.82 / 3.31 tokens per call against
 * 3.00 / 3.84 (BENCHMARKS.md). Pass medusa_choices for another, e.g. [[0], [0, 0], [0, 0, 0],
 * [0, 0, 0, 0]] for the chain of 4 (heads that guess better deeper down may repay it).
 */
export const DEFAULT_MEDUSA_CHOICES: readonly (readonly number[])[] = [[0], [0, 0], [0, 0, 0]];

/** A validated candidate tree (node 0 is the root: the pending token). */
export interface MedusaTree {
  /** The choices, sorted by length then lexicographically (the node order after the root). */
  readonly choices: readonly (readonly number[])[];
  /** Nodes, root included. */
  readonly size: number;
  /** Per node: parent node (−1 for the root), depth (0 root), head that proposes it (−1 root), rank in that head's top-k. */
  readonly parent: Int32Array;
  readonly depth: Int32Array;
  readonly head: Int32Array;
  readonly rank: Int32Array;
  readonly children: readonly number[][];
  /** Per head, how many of its most likely tokens the tree uses. */
  readonly topk: readonly number[];
  /** (size, size): 1 where node i sees node j (its ancestors and itself). */
  readonly mask: Uint8Array;
  /** The deepest path's candidates (the most tokens a step can accept). */
  readonly maxDepth: number;
}

/** Check and arrange medusa_choices for `numHeads` heads over a vocabulary of `vocab`. */
export function buildMedusaTree(choices: readonly (readonly number[])[], numHeads: number, vocab: number): MedusaTree {
  if (!Array.isArray(choices) || choices.length === 0) throw new MedusaChoicesError('medusa_choices must be a non-empty list of index paths, e.g. [[0], [0, 0], [1]]');
  const seen = new Map<string, number>();
  choices.forEach((c, n) => {
    const at = `medusa_choices[${n}] = ${JSON.stringify(c)}`;
    if (!Array.isArray(c) || c.length === 0) throw new MedusaChoicesError(`${at}: each entry must be a non-empty list of top-k indices`);
    for (const i of c) if (!Number.isInteger(i) || i < 0) throw new MedusaChoicesError(`${at}: ${JSON.stringify(i)} is not a non-negative integer`);
    if (c.length > numHeads) throw new MedusaChoicesError(`${at}: a path of length ${c.length} needs ${c.length} heads, the model has ${numHeads}`);
    for (const i of c) if (i >= vocab) throw new MedusaChoicesError(`${at}: top-${i + 1} of a vocabulary of ${vocab}`);
    const key = c.join(',');
    if (seen.has(key)) throw new MedusaChoicesError(`${at}: a duplicate of medusa_choices[${seen.get(key)}]`);
    seen.set(key, n);
  });
  for (const [key, n] of seen) {
    const c = key.split(',');
    if (c.length > 1 && !seen.has(c.slice(0, -1).join(','))) {
      throw new MedusaChoicesError(`medusa_choices[${n}] = [${c.join(', ')}]: its parent [${c.slice(0, -1).join(', ')}] is not in the tree`);
    }
  }
  const sorted = [...choices].map((c) => [...c]).sort((a, b) => a.length - b.length || cmp(a, b));
  const size = sorted.length + 1;
  const parent = new Int32Array(size).fill(-1), depth = new Int32Array(size), head = new Int32Array(size).fill(-1), rank = new Int32Array(size);
  const index = new Map<string, number>([['', 0]]);
  const children: number[][] = Array.from({ length: size }, () => []);
  const topk = new Array<number>(numHeads).fill(0);
  sorted.forEach((c, i) => {
    const node = i + 1, p = index.get(c.slice(0, -1).join(','))!;
    index.set(c.join(','), node);
    parent[node] = p;
    depth[node] = c.length;
    head[node] = c.length - 1;
    rank[node] = c[c.length - 1];
    children[p].push(node);
    topk[c.length - 1] = Math.max(topk[c.length - 1], rank[node] + 1);
  });
  const mask = new Uint8Array(size * size);
  for (let i = 0; i < size; i++) for (let a = i; a >= 0; a = parent[a]) mask[i * size + a] = 1;
  return { choices: sorted, size, parent, depth, head, rank, children, topk, mask, maxDepth: Math.max(...depth) };
}

function cmp(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export interface MedusaOptions {
  heads: MedusaHeadsLike;
  /** The candidate tree (default DEFAULT_MEDUSA_CHOICES, cut to the heads there are). */
  choices?: readonly (readonly number[])[];
  /** 'exact' (default): plain decoding's choices; 'typical': Medusa's typical acceptance (sampling only). */
  acceptance?: 'exact' | 'typical';
  /** Typical acceptance: the probability above which a candidate is always accepted (Medusa's default 0.09). */
  posteriorThreshold?: number;
  /** Typical acceptance: the entropy-adapted threshold's scale (Medusa's default 0.3, √0.09). */
  posteriorAlpha?: number;
  /**
   * After a tree with nothing accepted (when sampling: fewer than two tokens), decode the next
   * 1, 3, 7, 15, then 31 steps plainly (default true; false: a tree every step, as the Medusa
   * repo).
   */
  backoff?: boolean;
  /**
   * Confidence cut (default 0: off): the heads run one after another on the last accepted
   * node, and once the product of their top-1 probabilities (softmax of their logits) falls
   * below `cut`, the later heads are not run and the next tree keeps only the depths before
   * (a tree of the root alone is a plain step). A verified token costs compute on a CPU, so a
   * candidate that will likely be rejected may cost more than it is expected to gain; on the
   * speculative bench's model, cuts of 0.1–0.3 did not beat the whole chain (BENCHMARKS.md).
   * Proposals only: the output does not depend on it. Needs heads that run one by one
   * (MedusaHeadsLike.forwardHead, as MedusaHeads do); others ignore it.
   */
  cut?: number;
  /**
   * Prompt-lookup candidates beside the heads (default off): before each step, the text so far
   * (prompt and output) is matched as prompt lookup matches it (lookupMatch: the last `ngram`
   * tokens, 3 down to 1, at the earlier occurrence whose preceding tokens agree longest); when
   * the occurrence agrees with the end of the text over at least `minContext` tokens (default
   * MEDUSA_LOOKUP_MIN_CONTEXT, 6), the step verifies the up to `numDraft` (7) tokens that
   * followed it as a chain instead of the heads' tree, and the heads do not run for it. A long
   * agreement means the text is copying or looping, where a copy goes on further than the
   * heads' guesses reach; after a copy with nothing accepted the next step is the heads'.
   * Proposals only: the output does not depend on it.
   */
  lookup?: { ngram?: number; numDraft?: number; minContext?: number };
}

/**
 * MedusaOptions.lookup's default agreement for a copy to replace the heads' tree: on the
 * speculative bench's model, 6 tokens predicted the most tokens per unit of verification cost
 * over six prompts (4–8 within 7%; 1–2 copied too eagerly; BENCHMARKS.md).
 */
export const MEDUSA_LOOKUP_MIN_CONTEXT = 6;

/** Medusa decoding of one prompt; the result's stats carry `speculative`. */
export function medusaGenerate(model: CausalLM, prompt: number[], opts: GenerateOptions & { medusa: MedusaOptions }): SpeculativeResult {
  const g = new MedusaGeneration(model, prompt, opts);
  try {
    while (g.step());
  } finally {
    g.cancel();
  }
  return g.result();
}

/**
 * Medusa decoding advanced one model call at a time (as Generation, for a server that
 * interleaves requests): the first step() runs the prefill, each later one verifies a tree.
 */
export class MedusaGeneration implements SteppedGeneration {
  readonly batchSize = 1;
  readonly maxNewTokens: number;
  readonly sequences: Sequence[];
  private readonly seq: Sequence;
  private readonly heads: MedusaHeadsLike;
  private readonly tree: MedusaTree;
  private readonly typical: boolean;
  /** The built-in processors (typical acceptance scores nodes with them, on a copy of the ids). */
  private readonly chain: LogitsProcessor[];
  private readonly threshold: number;
  private readonly alpha: number;
  private readonly prompt: number[];
  private readonly g: Generator;
  private readonly stats: SpeculativeStats = { method: 'medusa', steps: 0, drafted: 0, accepted: 0, meanAcceptedLength: 0, acceptanceRate: 0 };
  private st: DecodeState | null = null;
  private phase: 'new' | 'running' | 'finished' | 'cancelled' = 'new';
  /** The token chosen last, not yet fed; and the heads' guesses at the position before it. */
  private pending = -1;
  private guesses: Float32Array[] = [];
  private prefillMs = 0;
  private decodeMs = 0;
  /** Back-off: trees with nothing accepted in a row, and plain steps left. */
  private failures = 0;
  private skip = 0;
  private readonly backoff: boolean;
  private readonly cut: number;
  /** Nodes of the next tree (after the confidence cut: the nodes of the depths kept, a prefix). */
  private nodes = 0;
  /** Per depth d (1…), the tree's nodes of depth ≤ d (nodes are ordered by depth). */
  private readonly upToDepth: number[];
  /** Prompt-lookup candidates (MedusaOptions.lookup; null: off), and the copy the next step verifies (null: the heads' tree). */
  private readonly lookup: { ngram: number; numDraft: number; minContext: number } | null;
  private copy: number[] | null = null;
  /** Chain trees for lookup copies, by node count. */
  private readonly chains = new Map<number, MedusaTree>();

  constructor(private readonly model: CausalLM, prompt: number[], private readonly opts: GenerateOptions & { medusa: MedusaOptions }) {
    const m = opts.medusa;
    this.heads = m.heads;
    if (!model.treeAttention) throw new MedusaChoicesError(`Medusa decoding needs tree attention, which model_type "${model.config.model_type}" does not have`);
    if (Array.isArray(prompt[0])) throw new RangeError('Medusa decoding takes one prompt');
    const choices = m.choices ?? DEFAULT_MEDUSA_CHOICES.filter((c) => c.length <= m.heads.numHeads);
    this.tree = buildMedusaTree(choices, m.heads.numHeads, model.config.vocab_size);
    this.typical = m.acceptance === 'typical';
    if (this.typical && !opts.temperature) throw new RangeError('typical acceptance samples: give a temperature > 0 (greedy Medusa decoding is exact)');
    this.chain = buildProcessors({ ...opts, processors: undefined }, prompt.length).chain;
    this.backoff = m.backoff ?? true;
    this.cut = m.cut ?? 0;
    if (!(this.cut >= 0 && this.cut <= 1)) throw new RangeError(`medusa.cut must be a number in [0, 1], got ${String(m.cut)}`);
    this.upToDepth = [1];
    for (let d = 1; d <= this.tree.maxDepth; d++) this.upToDepth.push(this.tree.depth.filter((x) => x <= d).length);
    if (m.lookup) {
      const { ngram = 3, numDraft = LOOKUP_NUM_DRAFT, minContext = MEDUSA_LOOKUP_MIN_CONTEXT } = m.lookup;
      for (const [k, v] of [['ngram', ngram], ['numDraft', numDraft], ['minContext', minContext]] as const) {
        if (!Number.isInteger(v) || v < 1) throw new RangeError(`medusa.lookup.${k} must be a positive integer, got ${String(v)}`);
      }
      this.lookup = { ngram, numDraft, minContext };
    } else this.lookup = null;
    this.threshold = m.posteriorThreshold ?? 0.09;
    this.alpha = m.posteriorAlpha ?? 0.3;
    const { batch, maxNew, stopIds } = prepareRequest(model, prompt, opts);
    this.prompt = batch[0];
    this.maxNewTokens = maxNew;
    this.seq = new Sequence(0, this.prompt, opts, stopIds, maxNew);
    this.sequences = [this.seq];
    this.g = new Generator(opts.seed ?? 0);
  }

  step(): boolean {
    if (this.phase === 'finished' || this.phase === 'cancelled') return false;
    const { model, heads, seq } = this, V = model.config.vocab_size;
    if (this.phase === 'new') {
      this.phase = 'running';
      const t0 = performance.now();
      const maxLen = this.prompt.length;
      const nodes = Math.max(this.tree.size, this.lookup ? this.lookup.numDraft + 1 : 0);
      const st = this.st = model.newState(1, Math.min(model.contextLength, maxLen + Math.max(this.maxNewTokens, 0) + nodes));
      // Prefill: the base model's next-token logits and the heads' guesses at the last position.
      const [base, guesses] = noGrad(() => scope(() => {
        const h = model.hidden(T.tensor([this.prompt], [1, maxLen], 'i32'), st);
        const last = T.slice(h, 1, -1);
        return [rowsOf(T.contiguous(model.project(last)), 1, V)[0], this.headGuesses(last)] as const;
      }));
      this.prefillMs = performance.now() - t0;
      if (this.maxNewTokens <= 0) { this.end(); return false; }
      const t1 = performance.now();
      this.pending = seq.take(base, this.g);
      this.guesses = guesses;
      if (!seq.done) this.copy = this.lookupCopy();
      this.decodeMs += performance.now() - t1;
      if (seq.done) { this.end(); return false; }
      return true;
    }
    const t1 = performance.now();
    this.verify();
    this.decodeMs += performance.now() - t1;
    if (seq.done) { this.end(); return false; }
    return true;
  }

  /** One tree: build it from the pending token and the heads' guesses, verify it in one forward, keep the accepted path. */
  private verify(): void {
    const { model, seq, stats } = this, st = this.st!, V = model.config.vocab_size;
    // The tree's tokens: the pending root, then each node's rank-th guess of its head (cut where
    // the context ends) — or, when lookup found a copy, the root and the copied tokens as a chain.
    // During a back-off (see below) a step of the heads is plain decoding: the root alone.
    const copy = this.copy;
    this.copy = null;
    const tree = copy ? this.chainTree(copy.length + 1) : this.tree;
    const plain = !copy && this.skip > 0;
    const n = plain ? 1 : Math.max(1, Math.min(copy ? tree.size : this.nodes, model.contextLength - st.length)), tokens = new Int32Array(n);
    tokens[0] = this.pending;
    if (copy) for (let i = 1; i < n; i++) tokens[i] = copy[i - 1];
    else {
      const top = plain ? [] : tree.topk.map((k, d) => (k ? topIndices(this.guesses[d], k) : []));
      for (let i = 1; i < n; i++) tokens[i] = top[tree.head[i]][tree.rank[i]];
    }
    const depth = Array.from(tree.depth.subarray(0, n));
    const mask = n === tree.size ? tree.mask : subMask(tree.mask, tree.size, n);
    const start = st.length;
    if (plain) this.skip--;
    this.guesses = noGrad(() => scope(() => {
      const h = model.hidden(T.tensor(tokens, [1, n], 'i32'), st, n > 1 ? { tree: { depth, mask } } : {});
      const rows = rowsOf(T.contiguous(model.project(h)), n, V);
      let cur = 0;
      const path = [0];
      if (this.typical) {
        // Medusa's typical acceptance: the longest accepted path (ties: the likeliest), then its
        // tokens, then a draw at its last node.
        for (const c of this.typicalPath(tree, rows, tokens, n).slice(1)) {
          const raw = seq.process(rows[cur]);
          seq.emit(tokens[c], raw);
          if (seq.done) break;
          path.push(c);
          cur = c;
        }
        if (!seq.done) {
          const logits = rows[cur], raw = seq.process(logits);
          this.pending = seq.emit(sampleFrom(logits, this.g), raw);
        }
      } else {
        // Walk the tree as plain decoding chooses: a child is accepted when it carries that choice.
        for (;;) {
          const id = seq.take(rows[cur], this.g);
          const next = tree.children[cur].find((c) => c < n && tokens[c] === id) ?? -1;
          if (next >= 0) { path.push(next); cur = next; } else this.pending = id;
          if (next < 0 || seq.done) break;
        }
      }
      stats.steps++;
      stats.drafted += tree.depth[n - 1];
      stats.accepted += path.length - 1;
      if (n > 1) st.compact(start, path);
      // Back-off: after a tree with nothing accepted (the heads guessed for another branch, e.g.
      // sampling away from their greedy training text), the next 1, 3, 7, 15, then 31 steps are
      // plain decoding, so that a method that is not working costs about what plain decoding does
      // (a tree the confidence cut left empty is a plain step, not a failure). When sampling, a
      // tree works when it accepts two tokens: one token (a draw that happened to match a head's
      // guess) does not repay a tree's forward and heads, about two decoding steps on a CPU, and
      // sampled text rarely gives more (BENCHMARKS.md).
      if (!copy && !plain && n > 1 && this.backoff) {
        if (path.length > (seq.isGreedy ? 1 : 2)) this.failures = 0;
        else this.skip = Math.min(31, 2 ** ++this.failures - 1);
      }
      if (seq.done) return [];
      // A copy to verify next (not right after a copy that failed): then the heads need not run.
      if (!(copy && path.length === 1)) this.copy = this.lookupCopy();
      if (this.copy) return [];
      const last = T.slice(h, 1, cur, cur + 1);
      // The heads only: the base's logits at this node are already in rows[cur].
      return this.skip > 0 ? [] : this.headGuesses(last);
    }));
  }

  /**
   * The heads' logits (host rows) for one hidden state (1, 1, D), and the next tree's size
   * (this.nodes). Only the heads the tree uses run when they can run one by one; with the
   * confidence cut they run in order of depth, and stop once the product of their top-1
   * probabilities falls below the cut (the next tree ends before that depth).
   */
  private headGuesses(h: Tensor): Float32Array[] {
    const { heads, tree } = this, V = this.model.config.vocab_size;
    const rows = (t: Tensor) => rowsOf(T.contiguous(t), 1, V)[0];
    const one = heads.forwardHead?.bind(heads);
    const none = new Float32Array(0);
    if (heads.forwardMany && this.cut === 0) {
      // Every head the tree uses, in one call (with tied LM heads: one product with the base head).
      const ks = tree.topk.flatMap((k, d) => (k ? [d] : []));
      const got = rowsOf(T.contiguous(heads.forwardMany(h, ks)), ks.length, V);
      this.nodes = tree.size;
      return tree.topk.map((k, d) => (k ? got[ks.indexOf(d)] : none));
    }
    if (!one) {
      this.nodes = tree.size;
      return heads.forward(h).map(rows);
    }
    const out: Float32Array[] = [];
    let p = 1, depth = 0;
    for (let d = 0; d < tree.topk.length; d++) {
      if (tree.topk[d] === 0 || depth < d) { out.push(none); continue; }
      const g = rows(one(h, d));
      out.push(g);
      if (this.cut > 0) {
        p *= top1Probability(g);
        if (p < this.cut) continue;
      }
      depth = d + 1;
    }
    this.nodes = this.upToDepth[Math.min(depth, tree.maxDepth)];
    return out;
  }

  /**
   * Typical acceptance over the first n nodes: node i's logits, processed by the built-in
   * processors with the sequence so far and the tokens of i's path, accept child c when
   * p(tokens[c]) > min(posterior_threshold, posterior_alpha · exp(−entropy)). Returns the root-to-
   * node path of the deepest node whose every edge is accepted (ties: the largest Σ log p).
   */
  private typicalPath(tree: MedusaTree, rows: Float32Array[], tokens: Int32Array, n: number): number[] {
    const ok = new Uint8Array(n), score = new Float64Array(n), ids = new Map<number, number[]>([[0, [...this.seq.ids]]]);
    ok[0] = 1;
    let best = 0;
    for (let i = 0; i < n; i++) {
      if (!ok[i]) continue;
      const kids = tree.children[i].filter((c) => c < n);
      if (!kids.length) continue;
      const logits = rows[i].slice(), mine = ids.get(i)!;
      for (const p of this.chain) p.process(mine, logits);
      const { probs, cut } = typicalCut(logits, this.threshold, this.alpha);
      for (const c of kids) {
        const p = probs[tokens[c]];
        if (!(p > cut)) continue;
        ok[c] = 1;
        score[c] = score[i] + Math.log(p);
        ids.set(c, [...mine, tokens[c]]);
        if (tree.depth[c] > tree.depth[best] || (tree.depth[c] === tree.depth[best] && score[c] > score[best])) best = c;
      }
    }
    const path: number[] = [];
    for (let a = best; a >= 0; a = tree.parent[a]) path.unshift(a);
    return path;
  }

  /** Prompt lookup's copy for the next step (MedusaOptions.lookup), or null (off, no match, too short an agreement, no budget). */
  private lookupCopy(): number[] | null {
    const lk = this.lookup;
    if (!lk) return null;
    const room = Math.min(lk.numDraft, this.maxNewTokens - this.seq.out.length - 1);
    if (room < 1) return null;
    const m = lookupMatch(this.seq.ids, lk.ngram, room);
    return m.tokens.length && m.context >= lk.minContext ? m.tokens : null;
  }

  /**
   * The chain of `size` nodes (the root and size − 1 copied tokens) as a tree: medusa_choices
   * [[0], [0, 0], …] (as many "heads" as copied tokens; only its shape and mask are used).
   */
  private chainTree(size: number): MedusaTree {
    let t = this.chains.get(size);
    if (!t) {
      t = buildMedusaTree(Array.from({ length: size - 1 }, (_, i) => new Array<number>(i + 1).fill(0)), size - 1, this.model.config.vocab_size);
      this.chains.set(size, t);
    }
    return t;
  }

  private end(): void {
    this.phase = 'finished';
    this.release();
    this.seq.close();
  }

  private release(): void {
    this.st?.dispose();
    this.st = null;
  }

  cancel(): void {
    if (this.phase === 'finished' || this.phase === 'cancelled') return;
    this.phase = 'cancelled';
    this.release();
    this.seq.close(false);
  }

  result(): SpeculativeResult {
    const res = resultOf([this.seq], this.opts, { prefillMs: this.prefillMs, decodeMs: this.decodeMs });
    const s = { ...this.stats };
    s.meanAcceptedLength = s.steps ? this.seq.out.length / (s.steps + 1) : 0;
    s.acceptanceRate = s.drafted ? s.accepted / s.drafted : 0;
    return { ...res, stats: { ...res.stats, speculative: s } };
  }
}

/** Top-1 probability of logits x: exp(max − log Σ exp x) (0 for an empty or NaN row). */
function top1Probability(x: Float32Array): number {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i] > m) m = x[i];
  return m === -Infinity || Number.isNaN(m) ? 0 : Math.exp(m - logSumExp(x));
}

/** Indices of the k largest values, largest first (ties to the lower index). */
function topIndices(x: Float32Array, k: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < x.length; i++) {
    if (best.length === k && !(x[i] > x[best[k - 1]])) continue;
    if (best.length < k) best.push(i);
    else best[k - 1] = i;
    for (let j = best.length - 1; j > 0 && x[best[j - 1]] < x[best[j]]; j--) [best[j - 1], best[j]] = [best[j], best[j - 1]];
  }
  return best;
}

/** The mask of the first n nodes (a tree cut where the context ends: parents precede children). */
function subMask(mask: Uint8Array, size: number, n: number): Uint8Array {
  const out = new Uint8Array(n * n);
  for (let i = 0; i < n; i++) out.set(mask.subarray(i * size, i * size + n), i * n);
  return out;
}

/** Softmax of processed logits and typical acceptance's cut: min(threshold, alpha · exp(−entropy)). */
function typicalCut(logits: Float32Array, threshold: number, alpha: number): { probs: Float64Array; cut: number } {
  let mx = -Infinity;
  for (const v of logits) if (v > mx) mx = v;
  const probs = new Float64Array(logits.length);
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += (probs[i] = Math.exp(logits[i] - mx));
  let entropy = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = (probs[i] /= z);
    if (p > 0) entropy -= p * Math.log(p);
  }
  return { probs, cut: Math.min(threshold, alpha * Math.exp(-entropy)) };
}
