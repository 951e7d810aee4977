// The speculative decoding flags shared by `tslm generate`, `tslm chat` and `tslm serve`:
//   --medusa DIR [--medusa-choices JSON|FILE] [--medusa-acceptance exact|typical]
//                [--posterior-threshold P] [--posterior-alpha A] [--medusa-dtype q8_0|f32]
//   --draft-model DIR [--num-draft N] [--draft-schedule constant|heuristic]
//   --lookup [N] [--lookup-ngram N] [--lookup-match longest|first] [--lookup-context N]   (N: tokens proposed per step, default 7)
//   --medusa DIR --lookup [N] [--lookup-context N]   (Medusa with prompt lookup's copies as candidates)
import { existsSync, readFileSync } from 'node:fs';
import { UsageError } from './args.js';
import { loadModel } from '../io/model.js';
import type { CausalLM } from '../models/causal.js';
import type { SpeculativeOptions, SpeculativeStats } from '../generate/stepped.js';
import { LOOKUP_NUM_DRAFT } from '../generate/speculative.js';

export const speculativeUsage = `      [--medusa DIR [--medusa-choices JSON|FILE] [--medusa-acceptance exact|typical]
       [--posterior-threshold P] [--posterior-alpha A] [--medusa-dtype q8_0|f32]
       | --draft-model DIR [--num-draft N] [--draft-schedule constant|heuristic]
       | --lookup [N] [--lookup-ngram N] [--lookup-match longest|first] [--lookup-context N]
       | --medusa DIR --lookup [N] [--lookup-context N]]`;

export const speculativeHelp = `    Speculative decoding (one sequence at a time; greedy output is plain greedy output, sampled
    output keeps plain sampling's distribution, except --medusa-acceptance typical):
    --medusa DIR    Medusa heads (tslm medusa train) verified as a tree in one forward; their
                    weights are quantised to Q8_0 as they load (--medusa-dtype q8_0, the
                    default: they only propose tokens, and read 3.8× fewer bytes; f32 keeps them);
    --draft-model DIR  a small model of the same vocabulary proposes --num-draft tokens (4);
    --lookup [N]    up to N tokens (7) copied from the prompt where its last --lookup-ngram
                    tokens (3, down to 1) occurred before: of several occurrences, the one whose
                    preceding tokens agree longest with the text (--lookup-match longest, the
                    default; first: the first occurrence, as Hugging Face's prompt lookup),
                    when it agrees with the end of the text over at least --lookup-context
                    tokens (1 greedy, 3 sampling: short matches rarely predict a sampled token);
    --medusa DIR --lookup [N]  both: a step verifies lookup's copy (up to N tokens) instead of the
                    heads' tree when the copied occurrence agrees with the end of the text over
                    at least --lookup-context tokens (6): the text is copying or looping.`;

export const speculativeOptions = {
  medusa: { type: 'string' }, 'medusa-choices': { type: 'string' }, 'medusa-acceptance': { type: 'string' },
  'posterior-threshold': { type: 'string' }, 'posterior-alpha': { type: 'string' }, 'medusa-dtype': { type: 'string' },
  'draft-model': { type: 'string' }, 'num-draft': { type: 'string' }, 'draft-schedule': { type: 'string' },
  lookup: { type: 'string' }, 'lookup-ngram': { type: 'string' }, 'lookup-match': { type: 'string' }, 'lookup-context': { type: 'string' },
} as const;

/** `--lookup` takes an optional value: give it the default when none follows. */
export function normalizeSpeculativeArgs(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    out.push(args[i]);
    if (args[i] === '--lookup' && (i + 1 >= args.length || !/^\d+$/.test(args[i + 1]))) out[out.length - 1] = `--lookup=${LOOKUP_NUM_DRAFT}`;
  }
  return out;
}

function posInt(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isInteger(x) || x < 1) throw new UsageError(`--${flag}: expected a positive integer, got '${v}'`);
  return x;
}

function unit(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!(x >= 0) || !Number.isFinite(x)) throw new UsageError(`--${flag}: expected a number ≥ 0, got '${v}'`);
  return x;
}

/** medusa_choices from a JSON string or a file holding one (a list, or an object with medusa_choices). */
function readChoices(v: string): number[][] {
  let text = v;
  if (!v.trim().startsWith('[') && !v.trim().startsWith('{')) {
    if (!existsSync(v)) throw new UsageError(`--medusa-choices: '${v}' is neither JSON nor a file`);
    text = readFileSync(v, 'utf8');
  }
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--medusa-choices: not JSON (${(e as Error).message})`);
  }
  if (x && typeof x === 'object' && !Array.isArray(x)) x = (x as Record<string, unknown>).medusa_choices;
  if (!Array.isArray(x)) throw new UsageError('--medusa-choices: expected a list of index paths, e.g. [[0], [0, 0], [1]]');
  return x as number[][];
}

/**
 * The speculative options the flags ask for (loading Medusa heads or the draft model, checked
 * against `model` before any decoding), or null when none is given.
 */
export async function speculativeFrom(values: Record<string, unknown>, model: CausalLM): Promise<SpeculativeOptions | null> {
  const v = values as Record<string, string | undefined>;
  const given = ['medusa', 'draft-model', 'lookup'].filter((k) => v[k] !== undefined);
  const medusaLookup = given.length === 2 && v.medusa !== undefined && v.lookup !== undefined;
  if (given.length > 1 && !medusaLookup) throw new UsageError(`give one of --medusa, --draft-model, --lookup, or --medusa with --lookup (got ${given.map((k) => `--${k}`).join(' and ')})`);
  const stray = (flags: string[], owner: string) => {
    for (const f of flags) if (v[f] !== undefined && v[owner] === undefined) throw new UsageError(`--${f} needs --${owner}`);
  };
  stray(['medusa-choices', 'medusa-acceptance', 'posterior-threshold', 'posterior-alpha', 'medusa-dtype'], 'medusa');
  stray(['num-draft', 'draft-schedule'], 'draft-model');
  stray(['lookup-ngram', 'lookup-match', 'lookup-context'], 'lookup');
  if (medusaLookup && v['lookup-match'] !== undefined) throw new UsageError('--lookup-match is not available with --medusa (its copies take the longest agreement)');
  if (v.medusa !== undefined) {
    const dtype = v['medusa-dtype'] ?? 'q8_0';
    if (dtype !== 'q8_0' && dtype !== 'f32') throw new UsageError(`--medusa-dtype: q8_0 or f32, got '${dtype}'`);
    const { loadMedusaHeads } = await import('../io/medusa.js');
    const { heads } = await loadMedusaHeads(v.medusa, { base: model, dtype });
    const acceptance = v['medusa-acceptance'];
    if (acceptance !== undefined && acceptance !== 'exact' && acceptance !== 'typical') throw new UsageError(`--medusa-acceptance: exact or typical, got '${acceptance}'`);
    const lookup = medusaLookup
      ? { numDraft: posInt(v.lookup, 'lookup'), ngram: posInt(v['lookup-ngram'], 'lookup-ngram'), minContext: posInt(v['lookup-context'], 'lookup-context') }
      : undefined;
    return {
      medusa: {
        heads, acceptance, choices: v['medusa-choices'] !== undefined ? readChoices(v['medusa-choices']) : undefined,
        posteriorThreshold: unit(v['posterior-threshold'], 'posterior-threshold'), posteriorAlpha: unit(v['posterior-alpha'], 'posterior-alpha'),
        lookup: lookup && (Object.fromEntries(Object.entries(lookup).filter(([, x]) => x !== undefined)) as typeof lookup),
      },
    };
  }
  if (v['draft-model'] !== undefined) {
    const { model: draft } = await loadModel(v['draft-model']);
    draft.eval();
    const schedule = v['draft-schedule'];
    if (schedule !== undefined && schedule !== 'constant' && schedule !== 'heuristic') throw new UsageError(`--draft-schedule: constant or heuristic, got '${schedule}'`);
    return { draft, numDraft: posInt(v['num-draft'], 'num-draft'), draftSchedule: schedule };
  }
  if (v.lookup !== undefined) {
    const match = v['lookup-match'];
    if (match !== undefined && match !== 'longest' && match !== 'first') throw new UsageError(`--lookup-match: longest or first, got '${match}'`);
    return { lookup: { numDraft: posInt(v.lookup, 'lookup'), ngram: posInt(v['lookup-ngram'], 'lookup-ngram'), match, minContext: posInt(v['lookup-context'], 'lookup-context') } };
  }
  return null;
}

/** One line of what a speculative decoding achieved (stderr of generate and chat). */
export function speculativeLine(s: SpeculativeStats): string {
  if (s.fallback) return `speculative (${s.method}): off — ${s.fallback}`;
  return `speculative (${s.method}): ${s.steps} verification steps, mean accepted length ${s.meanAcceptedLength.toFixed(2)} tokens per model call, acceptance rate ${(100 * s.acceptanceRate).toFixed(1)}% (${s.accepted}/${s.drafted})`;
}
