// A generation advanced one model call at a time, whichever the decoding method: plain
// (Generation), or speculative — Medusa heads (MedusaGeneration), and what every speculative
// method reports. newGeneration() picks the method from GenerateOptions.speculative; generate()
// and the server run what it returns.
import type { CausalLM } from '../models/causal.js';
import { Generation } from './generate.js';
import type { GenerateOptions, GenerationResult } from './generate.js';
import { MedusaGeneration } from './medusa.js';
import type { MedusaOptions } from './medusa.js';

export interface SpeculativeStats {
  method: 'medusa' | 'draft' | 'lookup';
  /** Verification forwards of the target model (each emits ≥ 1 token). */
  steps: number;
  /** Tokens proposed that a step could accept (draft or lookup tokens; a Medusa tree's depth per step). */
  drafted: number;
  /** Proposed tokens accepted. */
  accepted: number;
  /**
   * Tokens emitted per call of the target model, the prefill (which gives the first token)
   * included: emitted / (steps + 1). Plain decoding gives 1.
   */
  meanAcceptedLength: number;
  /** accepted / drafted. */
  acceptanceRate: number;
}

/** A generation result with the speculative method's statistics. */
export type SpeculativeResult = GenerationResult & { stats: { speculative: SpeculativeStats } };

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
}

/** The generation for a request: speculative when asked (one prompt), plain otherwise. */
export function newGeneration(model: CausalLM, prompts: number[] | number[][], opts: GenerateOptions = {}): SteppedGeneration {
  const spec = opts.speculative;
  if (!spec || !Object.values(spec).some((v) => v !== undefined)) return new Generation(model, prompts, opts);
  const batch = Array.isArray(prompts[0]) ? (prompts as number[][]) : [prompts as number[]];
  if (batch.length !== 1) throw new RangeError(`speculative decoding takes one prompt at a time, got ${batch.length}`);
  const methods = Object.entries(spec).filter(([, v]) => v !== undefined).map(([k]) => k);
  if (methods.length > 1) throw new RangeError(`speculative decoding: one method at a time, got ${methods.join(' and ')}`);
  if (spec.medusa) return new MedusaGeneration(model, batch[0], { ...opts, medusa: spec.medusa });
  throw new RangeError(`speculative decoding: unknown method ${methods[0]}`);
}
