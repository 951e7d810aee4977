export {
  SftDataError, IGNORE_INDEX, ALPACA_PROMPT_INPUT, ALPACA_PROMPT_NO_INPUT, CHATML_TEMPLATE, isChatRow, alpacaPrompt,
  parseInstructionData, readInstructionData, rowSegments, tokenizeRow, promptIds, collate, pack, SftBatcher,
} from './data.js';
export type { AlpacaRow, ChatRow, InstructionRow, SftExample, FormatOptions, SftBatch } from './data.js';
export { sftTrain, sftStep, responseLoss, exactMatch, DEFAULT_SFT_OPTIONS } from './train.js';
export { LoraSession, LORA_SESSION_DEFAULTS, instructionRowsFromBytes } from './session.js';
export type { LoraSessionOptions } from './session.js';
export type { SftOptions, SftStep } from './train.js';
export { withInstruction, parseGattDialogs, readGattDialogs, gattSamplingMessages, gattSample, gattTrainingRows } from './gatt.js';
export type { GattDialog, GattRow, GattPlacement, GattSampleOptions } from './gatt.js';
export { finetune, splitRows } from './finetune.js';
export type { FinetuneOptions, FinetuneResult } from './finetune.js';
export {
  rougeL, rougeLTokens, rougeTokens, parseSeedTasks, readSeedTasks, encodePrompt, parseCompletion, filterReason, BLOCKLIST,
  SELF_INSTRUCT_PROMPT, OpenAITeacher, LocalTeacher, selfInstruct, writeSelfInstruct,
} from './selfinstruct.js';
export type { SeedTask, Teacher, TeacherRequest, Completion, SelfInstructOptions, SelfInstructResult, SelfInstructStats, DropReason, ParsedTask } from './selfinstruct.js';
