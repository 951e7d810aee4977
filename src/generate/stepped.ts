// A generation advanced one model call at a time, whichever the decoding method: plain
// (Generation), or speculative — Medusa heads (MedusaGeneration), and what every speculative
// method reports. newGeneration() picks the method from GenerateOptions.speculative; generate()
// and the server run what it returns.
import type { CausalLM } from '../models/causal.js';
import { Generation } from './generate.js';
import type { GenerateOptions, GenerationResult } from './generate.js';
import { MedusaGeneration } from './medusa.js';
import type { MedusaOptions } from './medusa.js';
import { SpeculativeGeneration } from './speculative.js';
import type { ChainSpeculativeOptions } from './speculative.js';

export interface SpeculativeStats {
  method: 'medusa' | 'draft' | 'lookup';
  /** Verification forwards of the target model (each emits ≥ 1 token). */
  steps: number;
  /** Tokens proposed that a step could accept (draft or lookup tokens; a Medusa tree's depth per step). */
  drafted: number;
  /** Proposed tokens accepted. */
  accepted: number;
  /**
   * Tokens emitted per call of the target model (the prefill gives the first token and counts):
   * plain decoding gives 1.
   */
  meanAcceptedLength: number;
  /** accepted / drafted. */
  acceptanceRate: number;
  /** Set when the request was decoded plainly instead (e.g. a target whose state cannot roll back): why. */
  fallback?: string;
}

/** A generation result with the speculative method's statistics. */
export type SpeculativeResult = GenerationResult & { stats: GenerationResult['stats'] & { speculative: SpeculativeStats } };

/**
 * What a server drives: a generation advanced one model call at a time (Generation, and each
 * speculative method's generation): step() until false, cancel() to stop early, result().
 */
export interface SteppedGeneration {
  readonly batchSize: number;
  readonly maxNewTokens: number;
  step(): boolean;
  cancel(): void;
  result(): GenerationResult;
}

/** Speculative decoding options (GenerateOptions.speculative): one method. */
export interface SpeculativeOptions {
  /** Medusa heads and their tree. */
  medusa?: MedusaOptions;
  /** A draft model of the same vocabulary. */
  draft?: CausalLM;
  /** Prompt lookup (n-gram matches in the prompt and the text so far). */
  lookup?: ChainSpeculativeOptions['lookup'];
  /** Draft tokens per step (draft model, default 4). */
  numDraft?: number;
  /** The draft length schedule (HF's num_assistant_tokens_schedule). */
  draftSchedule?: ChainSpeculativeOptions['draftSchedule'];
}

/** The methods speculative options name (one, for options newGeneration accepts). */
export function speculativeMethods(spec: SpeculativeOptions): SpeculativeStats['method'][] {
  return (['medusa', 'draft', 'lookup'] as const).filter((k) => spec[k] !== undefined);
}

/** The generation for a request: speculative when asked (one prompt), plain otherwise. */
export function newGeneration(model: CausalLM, prompts: number[] | number[][], opts: GenerateOptions = {}): SteppedGeneration {
  const spec = opts.speculative;
  if (!spec || !Object.values(spec).some((v) => v !== undefined)) return new Generation(model, prompts, opts);
  const batch = Array.isArray(prompts[0]) ? (prompts as number[][]) : [prompts as number[]];
  if (batch.length !== 1) throw new RangeError(`speculative decoding takes one prompt at a time, got ${batch.length}`);
  const methods = speculativeMethods(spec);
  // Medusa takes prompt lookup's copies as candidates too (MedusaOptions.lookup): medusa + lookup is one method.
  const medusaLookup = methods.length === 2 && spec.medusa !== undefined && spec.lookup !== undefined;
  if (methods.length !== 1 && !medusaLookup) throw new RangeError(`speculative decoding: give one method of medusa, draft, lookup (or medusa with lookup)${methods.length ? `, got ${methods.join(' and ')}` : ''}`);
  if (opts.guidance && opts.guidance.scale !== 1) throw new RangeError('classifier-free guidance is not available with speculative decoding: use one or the other');
  const plain: GenerateOptions = { ...opts, speculative: undefined };
  if (spec.medusa) {
    const lookup = spec.lookup ? { ngram: spec.lookup.ngram, numDraft: spec.lookup.numDraft, minContext: spec.lookup.minContext } : undefined;
    return new MedusaGeneration(model, batch[0], { ...plain, medusa: lookup ? { ...spec.medusa, lookup: { ...spec.medusa.lookup, ...defined(lookup) } } : spec.medusa });
  }
  return new SpeculativeGeneration(model, batch[0], { ...plain, draft: spec.draft, lookup: spec.lookup, numDraft: spec.numDraft, draftSchedule: spec.draftSchedule });
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
