// Model presets, as HF configs (vocab_size is replaced by the tokenizer's when training):
// llama2.c's TinyStories LLaMA sizes, the quickstart LLaMA, a mixture of experts with its active
// size and a dense model with the MoE's total size (tslm bench moe), and Mamba and S4D models with
// about the same parameter count as the quickstart and 15M LLaMAs (tslm bench ssm).
export const PRESETS: Record<string, Record<string, unknown>> = {
  // stories260K: dim 64, 5 layers, 8 heads, 4 KV heads, vocab 512, seq 512
  '260k': { model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512, max_position_embeddings: 512, rms_norm_eps: 1e-5, tie_word_embeddings: true },
  // stories15M: dim 288, 6 layers, 6 heads, vocab 32000, seq 256
  '15m': { model_type: 'llama', hidden_size: 288, intermediate_size: 768, num_hidden_layers: 6, num_attention_heads: 6, num_key_value_heads: 6, vocab_size: 32000, max_position_embeddings: 256, rms_norm_eps: 1e-5, tie_word_embeddings: true },
  // stories42M: dim 512, 8 layers, 8 heads, vocab 32000, seq 1024
  '42m': { model_type: 'llama', hidden_size: 512, intermediate_size: 1376, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 8, vocab_size: 32000, max_position_embeddings: 1024, rms_norm_eps: 1e-5, tie_word_embeddings: true },
  // stories110M: dim 768, 12 layers, 12 heads, vocab 32000, seq 1024
  '110m': { model_type: 'llama', hidden_size: 768, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 12, num_key_value_heads: 12, vocab_size: 32000, max_position_embeddings: 1024, rms_norm_eps: 1e-5, tie_word_embeddings: true },
  // tslm quickstart's LLaMA: 0.99M parameters with a 2048-token vocabulary (0.73M outside the embedding)
  'quickstart': { model_type: 'llama', hidden_size: 128, intermediate_size: 344, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 2048, max_position_embeddings: 128, rms_norm_eps: 1e-5, tie_word_embeddings: true },
  // A Mixtral-layout mixture of experts with the quickstart's active size: 8 experts of width 172, top-2
  // (2 × 172 = the quickstart's 344), 2.58M parameters in all, 0.99M active per token; load-balancing
  // loss 0.02 (Mixtral's) and router z-loss 0.001 (ST-MoE's)
  'moe-quickstart': { model_type: 'mixtral', hidden_size: 128, intermediate_size: 172, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, num_local_experts: 8, num_experts_per_tok: 2, vocab_size: 2048, max_position_embeddings: 128, rms_norm_eps: 1e-5, tie_word_embeddings: true, output_router_logits: true, router_aux_loss_coef: 0.02, router_z_loss_coef: 0.001 },
  // A dense LLaMA with moe-quickstart's total size (2.57M): its FFN as wide as the 8 experts together
  'quickstart-wide': { model_type: 'llama', hidden_size: 128, intermediate_size: 1376, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 2048, max_position_embeddings: 128, rms_norm_eps: 1e-5, tie_word_embeddings: true },
  // Mamba of the quickstart's size: 0.96M (0.70M outside the embedding; d_inner 256, N 16)
  'mamba-quickstart': { model_type: 'mamba', hidden_size: 128, num_hidden_layers: 6, state_size: 16, expand: 2, conv_kernel: 4, vocab_size: 2048, layer_norm_epsilon: 1e-5, tie_word_embeddings: true },
  // S4D of the quickstart's size: 0.95M (0.69M outside the embedding; d_inner 256, 16 complex modes)
  's4d-quickstart': { model_type: 's4d', hidden_size: 128, num_hidden_layers: 6, state_size: 32, expand: 2, vocab_size: 2048, layer_norm_epsilon: 1e-5, tie_word_embeddings: true },
  // Mamba of stories15M's size: 15.3M (6.05M outside the embedding; the Mamba paper's ~2 blocks per transformer layer)
  'mamba-15m': { model_type: 'mamba', hidden_size: 288, num_hidden_layers: 11, state_size: 16, expand: 2, conv_kernel: 4, vocab_size: 32000, layer_norm_epsilon: 1e-5, tie_word_embeddings: true },
  // S4D of stories15M's size: 14.9M (5.73M outside the embedding; 32 complex modes)
  's4d-15m': { model_type: 's4d', hidden_size: 288, num_hidden_layers: 10, state_size: 64, expand: 2, vocab_size: 32000, layer_norm_epsilon: 1e-5, tie_word_embeddings: true },
};
