// What every speculative decoding method (Medusa, a draft model, prompt lookup) reports.

export interface SpeculativeStats {
  method: 'medusa' | 'draft' | 'lookup';
  /** Verification forwards of the target model (each emits ≥ 1 token). */
  steps: number;
  /** Tokens proposed that a step could accept (draft or lookup tokens; a Medusa tree's depth per step). */
  drafted: number;
  /** Proposed tokens accepted. */
  accepted: number;
  /** Tokens emitted per verification step, the target's own token included (emitted / steps). */
  meanAcceptedLength: number;
  /** accepted / drafted. */
  acceptanceRate: number;
}
