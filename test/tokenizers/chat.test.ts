// Chat templates (LLaMA-2, LLaMA-3 and Qwen's ChatML, as in their tokenizer_config.json files)
// rendered with @huggingface/jinja.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyChatTemplate, chatTemplateFromConfig, ChatTemplateError, HFTokenizer, TokenizerFormatError } from '../../src/tokenizers/index.js';
import { llama3Json } from './real_vocabs.js';

const FIX = new URL('../../../test/fixtures/tokenizers/', import.meta.url).pathname;
const T = JSON.parse(readFileSync(join(FIX, 'chat_templates.json'), 'utf8')) as Record<string, string>;
const msgs = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi!' },
  { role: 'assistant', content: 'Hello.' },
  { role: 'user', content: '你好 🦙' },
];

test('LLaMA-2 chat template', () => {
  const out = applyChatTemplate(msgs, { template: T.llama2, bosToken: '<s>', eosToken: '</s>' });
  assert.equal(out, '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi! [/INST] Hello. </s><s>[INST] 你好 🦙 [/INST]');
  assert.throws(() => applyChatTemplate([{ role: 'assistant', content: 'x' }], { template: T.llama2 }), ChatTemplateError);
});

test('LLaMA-3 chat template with generation prompt, tokenized with the LLaMA-3 vocabulary', async () => {
  const out = applyChatTemplate(msgs.slice(1, 2), { template: T.llama3, bosToken: '<|begin_of_text|>', addGenerationPrompt: true });
  assert.equal(out, '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
  const tok = new HFTokenizer(await llama3Json());
  // The ids Meta's tokenizer gives for this prompt.
  assert.deepEqual(tok.encode(out), [128000, 128006, 882, 128007, 271, 13347, 0, 128009, 128006, 78191, 128007, 271]);
});

test('ChatML (Qwen) template and tokenizer_config.json forms', () => {
  const cfg = { chat_template: T.chatml, bos_token: null, eos_token: { content: '<|im_end|>' } };
  const { template, eosToken } = chatTemplateFromConfig(cfg);
  assert.equal(eosToken, '<|im_end|>');
  const out = applyChatTemplate([{ role: 'user', content: 'Hi' }], { template, addGenerationPrompt: true });
  assert.equal(out, '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  const named = { chat_template: [{ name: 'default', template: T.chatml }, { name: 'tool_use', template: '{{ tools | length }}' }] };
  assert.equal(chatTemplateFromConfig(named, 'default').template, T.chatml);
  assert.equal(applyChatTemplate([], { template: chatTemplateFromConfig(named, 'tool_use').template, tools: [1, 2] }), '2');
  assert.throws(() => chatTemplateFromConfig(named, 'rag'), /tokenizer_config\.json: chat_template has no template named "rag"/);
  assert.throws(() => chatTemplateFromConfig({}), (e: Error) => e instanceof TokenizerFormatError && /chat_template is missing/.test(e.message));
  assert.throws(() => applyChatTemplate([], { template: '{% for %}' }), /chat_template: cannot parse/);
});
