// Self-instruct data generation as Stanford Alpaca's generate_instruction.py does it: sample a
// few seed tasks into a prompt that asks a teacher model for 20 diverse tasks, parse the numbered
// "N. Instruction: / N. Input: / N. Output:" blocks of each completion, and keep a new task only
// if it passes the recipe's filters: instruction of 4–150 words, no blocklisted keyword (image,
// graph, file, …), not "Write a program…", not starting with punctuation or a non-ASCII
// character, not an exact duplicate, and ROUGE-L F < 0.7 against every instruction kept so far
// (seeds included). The teacher is a tslm model or an OpenAI-compatible HTTP endpoint.
import { readFileSync, writeFileSync } from 'node:fs';
import { Generator } from '../tensor/random.js';
import type { CausalLM } from '../models/causal.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { generate } from '../generate/generate.js';
import { jsonRows, readDataText, SftDataError } from './data.js';
import type { AlpacaRow } from './data.js';

// ---- ROUGE-L (google-research rouge_score, default tokenizer, no stemming) -------------------

/** rouge_score's tokenizer: lowercase, non-alphanumerics to spaces, split. */
export function rougeTokens(s: string): string[] {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, ' ').split(' ').filter(Boolean);
}

function lcsLength(a: string[], b: string[]): number {
  if (!a.length || !b.length) return 0;
  let prev = new Uint32Array(b.length + 1), cur = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/** ROUGE-L F-measure of two token lists. */
export function rougeLTokens(a: string[], b: string[]): number {
  const l = lcsLength(a, b);
  if (l === 0) return 0;
  const p = l / a.length, r = l / b.length;
  return (2 * p * r) / (p + r);
}
export function rougeL(a: string, b: string): number {
  return rougeLTokens(rougeTokens(a), rougeTokens(b));
}

// ---- seeds, prompt, parsing, filters ------------------------------------------------------

/** A self-instruct seed task (seed_tasks.jsonl). */
export interface SeedTask { id?: string; name?: string; instruction: string; instances: { input: string; output: string }[]; is_classification?: boolean }

export function parseSeedTasks(text: string, file = '<seeds>'): SeedTask[] {
  const rows: SeedTask[] = [];
  const items: [unknown, string][] = jsonRows(text, file, (m) => new SftDataError(m)).map(({ value, where }) => [value, where]);
  for (const [o, where] of items) {
    const r = o as Record<string, unknown>;
    if (typeof r?.instruction !== 'string') throw new SftDataError(`${where}: seed task missing "instruction"`);
    let instances = r.instances as { input: string; output: string }[] | undefined;
    if (!Array.isArray(instances)) {
      if (typeof r.output === 'string' && (r.input == null || typeof r.input === 'string')) instances = [{ input: (r.input as string | undefined) ?? '', output: r.output }];
      else throw new SftDataError(`${where}: seed task missing "instances" (a list of {input, output})`);
    }
    if (!instances.length || instances.some((x) => typeof x?.output !== 'string' || (x.input != null && typeof x.input !== 'string'))) throw new SftDataError(`${where}: "instances" must hold {input, output} objects`);
    rows.push({ id: r.id as string | undefined, name: r.name as string | undefined, instruction: r.instruction, instances, is_classification: !!r.is_classification });
  }
  if (!rows.length) throw new SftDataError(`${file}: no seed tasks`);
  return rows;
}

export function readSeedTasks(file: string): SeedTask[] {
  return parseSeedTasks(readDataText(file, (m) => new SftDataError(m)), file);
}

/** Alpaca's prompt.txt (typos fixed, requirements renumbered). */
export const SELF_INSTRUCT_PROMPT = `You are asked to come up with a set of 20 diverse task instructions. These task instructions will be given to a GPT model and we will evaluate the GPT model for completing the instructions.

Here are the requirements:
1. Try not to repeat the verb for each instruction to maximize diversity.
2. The language used for the instruction also should be diverse. For example, you should combine questions with imperative instructions.
3. The type of instructions should be diverse. The list should include diverse types of tasks like open-ended generation, classification, editing, etc.
4. A GPT language model should be able to complete the instruction. For example, do not ask the assistant to create any visual or audio output. For another example, do not ask the assistant to wake you up at 5pm or set a reminder because it cannot perform any action.
5. The instructions should be in English.
6. The instructions should be 1 to 2 sentences long. Either an imperative sentence or a question is permitted.
7. You should generate an appropriate input to the instruction. The input field should contain a specific example provided for the instruction. It should involve realistic data and should not contain simple placeholders. The input should provide substantial content to make the instruction challenging but should ideally not exceed 100 words.
8. Not all instructions require input. For example, when an instruction asks about some general information, "what is the highest peak in the world", it is not necessary to provide a specific context. In this case, we simply put "<noinput>" in the input field.
9. The output should be an appropriate response to the instruction and the input. Make sure the output is less than 100 words.

List of 20 tasks:
`;

/** The prompt for one request: the header, the sampled tasks numbered 1…n, then "n+1. Instruction:". */
export function encodePrompt(tasks: AlpacaRow[]): string {
  let p = SELF_INSTRUCT_PROMPT + '\n';
  tasks.forEach((t, i) => {
    const instruction = t.instruction.replace(/\s+/g, ' ').trim().replace(/:+$/, '');
    const input = !t.input ? '<noinput>' : t.input;
    p += `###\n${i + 1}. Instruction: ${instruction}\n${i + 1}. Input:\n${input}\n${i + 1}. Output:\n${t.output}\n`;
  });
  return p + `###\n${tasks.length + 1}. Instruction:`;
}

/** Keywords that mark tasks a text-only model cannot do (Alpaca's blacklist). */
export const BLOCKLIST = ['image', 'images', 'graph', 'graphs', 'picture', 'pictures', 'file', 'files', 'map', 'maps', 'draw', 'plot', 'go to', 'video', 'audio', 'music', 'flowchart', 'diagram'];

export type DropReason = 'unparsable' | 'truncated' | 'too_short' | 'too_long' | 'blocklist' | 'write_a_program' | 'punctuation' | 'non_ascii' | 'duplicate' | 'similar';

export interface ParsedTask extends AlpacaRow { input: string }

const PUNCT = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'.split(''));

/** Why a parsed instruction fails the recipe's filters before the similarity check, or null. */
export function filterReason(inst: string, o: { minWords?: number; maxWords?: number; blocklist?: string[] } = {}): DropReason | null {
  const words = inst.split(/\s+/).filter(Boolean).length;
  if (words < (o.minWords ?? 4)) return 'too_short';
  if (words > (o.maxWords ?? 150)) return 'too_long';
  for (const w of o.blocklist ?? BLOCKLIST) if (new RegExp(`\\b(${w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')})\\b`, 'i').test(inst)) return 'blocklist';
  if (inst.startsWith('Write a program')) return 'write_a_program';
  if (PUNCT.has(inst[0])) return 'punctuation';
  if (inst.charCodeAt(0) > 127) return 'non_ascii';
  return null;
}

/**
 * Parse one completion of a prompt that held `numPrompt` tasks: blocks split on "###", each
 * "k. Instruction: … k. Input: … k. Output: …" with k counting on from numPrompt+1. When the
 * completion stopped on length, its last block is dropped (likely cut off).
 */
export function parseCompletion(text: string, numPrompt: number, finishReason: string): { tasks: ParsedTask[]; dropped: DropReason[] } {
  // A chat model may repeat the "k. Instruction:" the prompt ended with; a completion model continues after it.
  const body = /^\s*\d+\s*\.\s*Instruction:/.test(text) ? text : `${numPrompt + 1}. Instruction:${text}`;
  const blocks = body.split('###');
  const tasks: ParsedTask[] = [], dropped: DropReason[] = [];
  blocks.forEach((blk, i) => {
    if (!blk.trim()) return;
    if (i === blocks.length - 1 && finishReason === 'length') { dropped.push('truncated'); return; }
    const m = blk.match(/^\s*(\d+)\s*\.\s*Instruction:([\s\S]*?)\n\s*\1\s*\.\s*Input:([\s\S]*?)\n\s*\1\s*\.\s*Output:([\s\S]*)$/);
    if (!m) { dropped.push('unparsable'); return; }
    const instruction = m[2].trim();
    let input = m[3].trim();
    if (input.toLowerCase() === '<noinput>') input = '';
    const output = m[4].trim();
    if (!instruction || !output) { dropped.push('unparsable'); return; }
    tasks.push({ instruction, input, output });
  });
  return { tasks, dropped };
}

// ---- teachers -----------------------------------------------------------------------------

export interface Completion { text: string; finishReason: string }
export interface TeacherRequest { maxTokens: number; temperature: number; topP: number; stop: string[]; seed?: number }
/** Anything that completes prompts. */
export interface Teacher { complete(prompts: string[], o: TeacherRequest): Promise<Completion[]> }

/**
 * An OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, tslm serve…): POST
 * {baseUrl}/completions with a batch of prompts (the recipe's API), or {baseUrl}/chat/completions
 * with one user message per prompt.
 */
export class OpenAITeacher implements Teacher {
  constructor(readonly o: { baseUrl: string; apiKey?: string; model: string; api?: 'completions' | 'chat'; fetch?: typeof fetch }) {}
  private async post(route: string, body: unknown): Promise<Record<string, unknown>> {
    const url = this.o.baseUrl.replace(/\/+$/, '') + route;
    const res = await (this.o.fetch ?? fetch)(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(this.o.apiKey ? { authorization: `Bearer ${this.o.apiKey}` } : {}) },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new SftDataError(`${url}: HTTP ${res.status} ${text.slice(0, 200)}`);
    try { return JSON.parse(text); } catch { throw new SftDataError(`${url}: response is not JSON: ${text.slice(0, 200)}`); }
  }
  async complete(prompts: string[], r: TeacherRequest): Promise<Completion[]> {
    const common = { model: this.o.model, max_tokens: r.maxTokens, temperature: r.temperature, top_p: r.topP, stop: r.stop.slice(0, 4), ...(r.seed !== undefined ? { seed: r.seed } : {}) };
    if ((this.o.api ?? 'completions') === 'completions') {
      const j = await this.post('/completions', { ...common, prompt: prompts, n: 1 });
      const choices = (j.choices ?? []) as { text: string; index: number; finish_reason: string }[];
      const out: Completion[] = prompts.map(() => ({ text: '', finishReason: 'error' }));
      for (const c of choices) if (c.index >= 0 && c.index < prompts.length) out[c.index] = { text: c.text ?? '', finishReason: c.finish_reason ?? 'stop' };
      return out;
    }
    return Promise.all(prompts.map(async (p) => {
      const j = await this.post('/chat/completions', { ...common, messages: [{ role: 'user', content: p }] });
      const c = ((j.choices ?? []) as { message: { content: string }; finish_reason: string }[])[0];
      return { text: c?.message?.content ?? '', finishReason: c?.finish_reason ?? 'error' };
    }));
  }
}

/** A local tslm model as the teacher (sampled with the request's temperature/top-p, stop strings). */
export class LocalTeacher implements Teacher {
  constructor(readonly model: CausalLM, readonly tokenizer: Tokenizer) {}
  async complete(prompts: string[], r: TeacherRequest): Promise<Completion[]> {
    const out: Completion[] = [];
    const max = this.model.contextLength;
    for (let i = 0; i < prompts.length; i++) {
      let ids = this.tokenizer.encode(prompts[i]);
      if (this.tokenizer.bosId !== null) ids = [this.tokenizer.bosId, ...ids];
      const room = Math.max(1, Math.min(r.maxTokens, max - 1));
      if (ids.length + room > max) ids = ids.slice(ids.length + room - max); // keep the end of the prompt
      const g = generate(this.model, ids, {
        maxNewTokens: Math.min(r.maxTokens, max - ids.length), temperature: r.temperature, topP: r.topP, seed: (r.seed ?? 0) + i,
        stopStrings: r.stop, tokenizer: this.tokenizer, stopIds: this.tokenizer.eosId !== null ? [this.tokenizer.eosId] : [],
      });
      out.push({ text: g.text![0], finishReason: g.finishReason[0] });
    }
    return out;
  }
}

// ---- the generation loop --------------------------------------------------------------------

export interface SelfInstructOptions {
  /** Stop once this many new tasks are kept. */
  numInstructions: number;
  /** Seed tasks per prompt (Alpaca: 3). */
  numPromptInstructions?: number;
  /** Prompts per teacher request (Alpaca: 5). */
  requestBatchSize?: number;
  /** Give up after this many requests (default: enough for 4× the target at 1 task each). */
  maxRequests?: number;
  temperature?: number;
  topP?: number;
  maxTokens?: number;
  similarityThreshold?: number;
  minWords?: number;
  maxWords?: number;
  blocklist?: string[];
  seed?: number;
  log?: (line: string) => void;
}

export interface SelfInstructStats {
  requests: number;
  prompts: number;
  parsed: number;
  kept: number;
  dropped: Record<DropReason, number>;
  seconds: number;
  /** Histogram of the highest ROUGE-L of each kept task against the pool before it (bins of 0.1). */
  maxRougeHistogram: number[];
}

export interface SelfInstructResult { tasks: (ParsedTask & { most_similar?: string; max_rouge: number })[]; stats: SelfInstructStats }

export async function selfInstruct(seeds: SeedTask[], teacher: Teacher, o: SelfInstructOptions): Promise<SelfInstructResult> {
  const t0 = performance.now();
  const nPrompt = o.numPromptInstructions ?? 3, batch = o.requestBatchSize ?? 5;
  const threshold = o.similarityThreshold ?? 0.7;
  const seedRows: AlpacaRow[] = seeds.map((s) => ({ instruction: s.instruction, input: s.instances[0].input ?? '', output: s.instances[0].output }));
  if (seedRows.length < nPrompt) throw new SftDataError(`${seedRows.length} seed task(s) but ${nPrompt} are needed per prompt (--num-prompt-instructions)`);
  const g = new Generator(o.seed ?? 0);
  const pool: string[] = seedRows.map((s) => s.instruction);
  const poolTokens = pool.map(rougeTokens);
  const seen = new Set(pool.map((s) => s.trim().toLowerCase()));
  const dropped = Object.fromEntries((['unparsable', 'truncated', 'too_short', 'too_long', 'blocklist', 'write_a_program', 'punctuation', 'non_ascii', 'duplicate', 'similar'] as DropReason[]).map((k) => [k, 0])) as Record<DropReason, number>;
  const stats: SelfInstructStats = { requests: 0, prompts: 0, parsed: 0, kept: 0, dropped, seconds: 0, maxRougeHistogram: new Array(10).fill(0) };
  const kept: SelfInstructResult['tasks'] = [];
  const maxRequests = o.maxRequests ?? Math.max(4, Math.ceil((4 * o.numInstructions) / batch));
  while (kept.length < o.numInstructions && stats.requests < maxRequests) {
    const prompts: string[] = [];
    for (let b = 0; b < batch; b++) {
      // random.sample(seed_instruction_data, n) without replacement
      const idx = seedRows.map((_, i) => i);
      for (let i = 0; i < nPrompt; i++) { const j = i + g.int(idx.length - i); [idx[i], idx[j]] = [idx[j], idx[i]]; }
      prompts.push(encodePrompt(idx.slice(0, nPrompt).map((i) => seedRows[i])));
    }
    const completions = await teacher.complete(prompts, {
      maxTokens: o.maxTokens ?? 3072, temperature: o.temperature ?? 1, topP: o.topP ?? 1, stop: ['\n20', '20.', '20 .'], seed: (o.seed ?? 0) * 1000 + stats.requests,
    });
    stats.requests++;
    stats.prompts += prompts.length;
    for (const c of completions) {
      const { tasks, dropped: d } = parseCompletion(c.text, nPrompt, c.finishReason);
      for (const r of d) dropped[r]++;
      stats.parsed += tasks.length;
      for (const t of tasks) {
        if (kept.length >= o.numInstructions) break;
        const why = filterReason(t.instruction, o);
        if (why) { dropped[why]++; continue; }
        const key = t.instruction.trim().toLowerCase();
        if (seen.has(key)) { dropped.duplicate++; continue; }
        const toks = rougeTokens(t.instruction);
        let best = 0, bestI = -1;
        for (let i = 0; i < poolTokens.length; i++) { const s = rougeLTokens(toks, poolTokens[i]); if (s > best) { best = s; bestI = i; } }
        if (best >= threshold) { dropped.similar++; continue; }
        seen.add(key);
        pool.push(t.instruction);
        poolTokens.push(toks);
        stats.maxRougeHistogram[Math.min(9, Math.floor(best * 10))]++;
        kept.push({ ...t, most_similar: bestI >= 0 ? pool[bestI] : undefined, max_rouge: best });
      }
    }
    stats.kept = kept.length;
    o.log?.(`request ${stats.requests}: ${stats.parsed} parsed, ${kept.length}/${o.numInstructions} kept`);
  }
  stats.kept = kept.length;
  stats.seconds = (performance.now() - t0) / 1000;
  return { tasks: kept, stats };
}

/** Write the kept tasks as Alpaca JSON (instruction, input, output) and the statistics beside them. */
export function writeSelfInstruct(file: string, r: SelfInstructResult): string {
  writeFileSync(file, JSON.stringify(r.tasks.map((t) => ({ instruction: t.instruction, input: t.input, output: t.output })), null, 2) + '\n');
  const statsFile = file.replace(/\.json$/, '') + '.stats.json';
  writeFileSync(statsFile, JSON.stringify(r.stats, null, 2) + '\n');
  return statsFile;
}
