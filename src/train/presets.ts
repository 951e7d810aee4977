// Model presets: the llama2.c TinyStories sizes (dims as in its README / export), as HF configs.
export const PRESETS: Record<string, Record<string, unknown>> = {
  // stories260K: dim 64, 5 layers, 8 heads, 4 KV heads, vocab 512, seq 512
  '260k': { model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 512, max_position_embeddings: 512, rms_norm_eps: 1e-5, tie_word_embeddings: true },
  // stories15M: dim 288, 6 layers, 6 heads, vocab 32000, seq 256
  '15m': { model_type: 'llama', hidden_size: 288, intermediate_size: 768, num_hidden_layers: 6, num_attention_heads: 6, num_key_value_heads: 6, vocab_size: 32000, max_position_embeddings: 256, rms_norm_eps: 1e-5, tie_word_embeddings: true },
  // stories42M: dim 512, 8 layers, 8 heads, vocab 32000, seq 1024
  '42m': { model_type: 'llama', hidden_size: 512, intermediate_size: 1376, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 8, vocab_size: 32000, max_position_embeddings: 1024, rms_norm_eps: 1e-5, tie_word_embeddings: true },
  // stories110M: dim 768, 12 layers, 12 heads, vocab 32000, seq 1024
  '110m': { model_type: 'llama', hidden_size: 768, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 12, num_key_value_heads: 12, vocab_size: 32000, max_position_embeddings: 1024, rms_norm_eps: 1e-5, tie_word_embeddings: true },
};
