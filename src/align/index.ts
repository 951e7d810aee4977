export { rollout, StopTags } from './rollout.js';
export type { Rollout, RolloutOptions } from './rollout.js';
export { packSequences, sliceRows, tokenLogprobs } from './logprobs.js';
export type { PackedSequences } from './logprobs.js';
export { policyLoss, perTokenKl, PolicyLossError, LOSS_TYPES, KL_ESTIMATORS } from './losses.js';
export type { LossType, KlEstimator, ImportanceSampling, PolicyLossOptions, PolicyLossInput, PolicyLossResult } from './losses.js';
export {
  groupAdvantages, zeroStdGroups, filterGroups, overlongPenalty, maskTruncated, kimiLengthPenalty, shortestRejection, ProblemSampler, AdvantageError,
} from './advantages.js';
export type { RewardScale, FilteredGroups, RejectionSample, ProblemSamplerOptions, ProblemSamplerState } from './advantages.js';
export {
  createReward, extractAnswer, mathEqual, parseNumber, answerPart, thinkAnswerFormat, extractCode, RewardSpecError, RewardModuleError, RewardInputError,
} from './rewards.js';
export type { RewardContext, RewardScores, RewardFunction, RewardOptions, Rational } from './rewards.js';
export { Sandbox, SandboxError } from './sandbox.js';
export type { SandboxOptions, SandboxJob, SandboxResult } from './sandbox.js';
export { parsePrompts, readPrompts, promptTokens, PromptDataError } from './data.js';
export type { PromptRow, PromptFormat } from './data.js';
export { grpoTrain, grpoOptions, evaluatePolicy, DEFAULT_GRPO_OPTIONS } from './grpo.js';
export type { GrpoOptions, GrpoInput, GrpoResult, RlMetrics, EvalResult } from './grpo.js';
export { rlReportHtml, rlProgressLine, seriesSvg } from './report.js';
export { arithmeticProblems, arithmeticTokenizer } from './task.js';
export type { ArithmeticRow, ArithmeticOptions } from './task.js';
export { rlDemo, demoConfig } from './demo.js';
export type { DemoOptions, DemoResult } from './demo.js';
export { parsePreferences, readPreferences, tokenizePairs, PreferenceDataError } from './preference.js';
export type { PreferencePair, TokenizedPair } from './preference.js';
export {
  dpoLoss, sequenceLogps, pairLogps, dpoTrain, dpoOptions, dpoProgressLine, dpoReportHtml, DEFAULT_DPO_OPTIONS, DPO_LOSS_TYPES, DpoLossError,
} from './dpo.js';
export type { DpoLossType, DpoLossOptions, DpoMetrics, DpoOptions, DpoStepMetrics, DpoInput, DpoResult } from './dpo.js';
export {
  RewardModel, RewardModelError, bradleyTerryLoss, lastNonPadIndex, rewardModelFromCausalLM, loadRewardModel, saveRewardModel, isRewardModelConfig,
  padTokenOf, assertSameTokenizer, rewardTrain, evaluateRewardModel, DEFAULT_REWARD_OPTIONS,
} from './reward_model.js';
export type { RewardMetrics, RewardTrainOptions, RewardStepMetrics } from './reward_model.js';
export { rejectionSampling, rewardModelScorer, verifierScorer, DEFAULT_REJECTION_OPTIONS } from './rejection.js';
export type { Scorer, RejectionOptions, RejectionRound, KeptSample } from './rejection.js';
export { ppoTrain, ppoOptions, DEFAULT_PPO_OPTIONS } from './ppo.js';
export type { PpoOptions, PpoMetrics, PpoInput } from './ppo.js';
export { tokenValues } from './logprobs.js';
export {
  maskedMean, maskedVar, maskedWhiten, tokenRewards, gae, ppoPolicyLoss, ppoValueLoss, FixedKLController, AdaptiveKLController, PpoError,
} from './ppo_losses.js';
export type { PpoKlEstimator, TokenRewardsInput, TokenRewards, GaeInput, PpoLossResult, PpoPolicyLossInput, PpoValueLossInput } from './ppo_losses.js';
