// A Node.js program of a project that installed the tslm tarball: imports the package by name,
// type-checked by the test (module node16), then run: a forward pass and greedy decoding.
import { init, shutdown, backend, Generator, LlamaForCausalLM, parseLlamaConfig, generate, tensor } from 'tslm';
import type { InitOptions, LlamaConfig } from 'tslm';

const opts: InitOptions = { threads: 2 };
await init(opts);
const config: LlamaConfig = parseLlamaConfig({ hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 64, max_position_embeddings: 32 });
const model = new LlamaForCausalLM(config, { generator: new Generator(7) });
const loss: number = model.loss(tensor([1, 2, 3, 4, 5, 6], [1, 6], 'i32')).item();
const ids: number[] = generate(model, [1, 2, 3], { maxNewTokens: 4, stopIds: [] }).ids[0];
console.log(JSON.stringify({ backend: backend().name, threads: backend().threads, loss, ids }));
await shutdown();
