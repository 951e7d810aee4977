#!/usr/bin/env python3
"""Golden files for the io layer (test/fixtures/io/), from outside references.

Deterministic. Needs only the standard library, numpy and Debian's PyTorch (1.13):
    apt-get install python3-torch && /usr/bin/python3 scripts/gen_io_fixtures.py

- safetensors: written here straight from the format spec (huggingface/safetensors README and
  its Rust `prepare`: tensors sorted by descending dtype alignment then name, compact JSON with
  __metadata__ first, header padded with spaces to a multiple of 8), values from torch.
- f16/bf16: torch's float32 -> float16 / bfloat16 casts (round to nearest even) of edge values.
- Q8_0: numpy transcription of ggml's quantize_row_q8_0_ref (float32 throughout, roundf).
- llama2.c: the byte layout of karpathy/llama2.c export.py's legacy_export and
  version1_export (copied logic: struct.pack headers, serialize_fp32 order), and the HF
  tensors its hf_export produces (permute_original on wq/wk).
"""
import json
import os
import struct

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'io')
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)

# ---------------------------------------------------------------- safetensors (spec)
RANK = ['BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64']
TORCH_DT = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.float64: 'F64',
            torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8', torch.uint8: 'U8', torch.bool: 'BOOL'}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype('<i2').tobytes()
    return t.numpy().tobytes()


def save_safetensors(path, tensors, metadata=None):
    items = sorted(tensors.items(), key=lambda kv: (-RANK.index(TORCH_DT[kv[1].dtype]), kv[0]))
    header = {}
    if metadata is not None:
        header['__metadata__'] = metadata
    off = 0
    blobs = []
    for name, t in items:
        b = tensor_bytes(t)
        header[name] = {'dtype': TORCH_DT[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(',', ':'), ensure_ascii=False).encode('utf-8')
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def as_list(t):
    return t.to(torch.float64).flatten().tolist() if t.is_floating_point() else t.flatten().tolist()


st = {
    'w.f32': torch.randn(3, 5),
    'w.f16': torch.randn(4, 3).to(torch.float16),
    'w.bf16': torch.randn(2, 7).to(torch.bfloat16),
    'ids.i64': torch.tensor([[1, -2, 3], [2**40, 5, -6]], dtype=torch.int64),
    'mask.u8': torch.tensor([0, 1, 255], dtype=torch.uint8),
    'flag.bool': torch.tensor([True, False]),
    'scalar.f32': torch.tensor(2.5),
    'empty.f32': torch.zeros(0, 3),
    'ünï.f64': torch.randn(2, dtype=torch.float64),
}
save_safetensors(os.path.join(OUT, 'mixed.safetensors'), st, {'format': 'pt', 'note': 'gen_io_fixtures.py'})
expected = {k: {'dtype': TORCH_DT[v.dtype], 'shape': list(v.shape), 'values': as_list(v)} for k, v in st.items()}

# ---------------------------------------------------------------- f16 / bf16 rounding (torch)
edge = np.array([
    0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 1e6, -1e6, 6.1035156e-05, 6.0e-05, 5.96e-08, 2.98e-08,
    2.9802322e-08, 2.9802326e-08, 1e-10, 1.0009765625, 1.00048828125, 1.00146484375, 1.000732421875,
    3.14159265, -2.71828, 0.1, 1 / 3, float('inf'), float('-inf'),
    1.0039062, 1.00390625, 1.01171875, 3.3895314e38, -3.3961775e38,
], dtype=np.float32)
rnd = torch.randn(200, generator=torch.Generator().manual_seed(1)) * torch.logspace(-9, 6, 200)
vals = torch.cat([torch.from_numpy(edge), rnd.to(torch.float32)])
f16 = vals.to(torch.float16).view(torch.int16).numpy().astype(np.uint16)
bf16 = vals.to(torch.bfloat16).view(torch.int16).numpy().astype(np.uint16)
halfround = {
    'f32_bits': vals.numpy().view(np.uint32).tolist(),
    'f16_bits': f16.tolist(),
    'bf16_bits': bf16.tolist(),
}

# ---------------------------------------------------------------- Q8_0 (ggml quantize_row_q8_0_ref)
def q8_0(x):
    x = x.astype(np.float32).reshape(-1, 32)
    out = bytearray()
    for row in x:
        amax = np.float32(np.max(np.abs(row)))
        d = np.float32(amax / np.float32(127))
        idv = np.float32(np.float32(1) / d) if d != 0 else np.float32(0)
        out += np.float16(d).tobytes()
        q = row * idv  # float32 multiply
        q = np.where(q < 0, -np.floor(-q + np.float32(0.5)), np.floor(q + np.float32(0.5)))
        out += q.astype(np.int8).tobytes()
    return bytes(out)


qx = (torch.randn(4 * 32, generator=torch.Generator().manual_seed(2)) * 3).numpy().astype(np.float32)
qx[32:64] = 0.0                      # an all-zero block: d = 0
qx[64] = 1.0; qx[65:96] = 1.0 / 127 * np.arange(31, dtype=np.float32)  # ties at x.5
q8 = {'x': qx.astype(np.float64).tolist(), 'blocks_hex': q8_0(qx).hex()}

# ---------------------------------------------------------------- llama2.c (export.py)
def llama2c_model(dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len, shared, seed):
    g = torch.Generator().manual_seed(seed)
    hs = dim // n_heads
    r = lambda *s: torch.randn(*s, generator=g)
    m = {
        'tok_embeddings': r(vocab, dim),
        'norm': r(dim),
        'layers': [{
            'attention_norm': r(dim), 'wq': r(dim, dim), 'wk': r(n_kv_heads * hs, dim), 'wv': r(n_kv_heads * hs, dim),
            'wo': r(dim, dim), 'ffn_norm': r(dim), 'w1': r(hidden, dim), 'w2': r(dim, hidden), 'w3': r(hidden, dim),
        } for _ in range(n_layers)],
    }
    m['output'] = m['tok_embeddings'] if shared else r(vocab, dim)
    # precompute_freqs_cis from llama2.c model.py (theta 10000)
    freqs = 1.0 / (10000.0 ** (torch.arange(0, hs, 2)[: (hs // 2)].float() / hs))
    t = torch.arange(seq_len, device=freqs.device)
    freqs = torch.outer(t, freqs).float()
    m['freqs_cos'], m['freqs_sin'] = torch.cos(freqs), torch.sin(freqs)
    m['p'] = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads, vocab=vocab, seq_len=seq_len)
    return m


def fp32(f, t):
    d = t.detach().cpu().view(-1).to(torch.float32).numpy()
    f.write(struct.pack(f'{len(d)}f', *d))


def legacy_export(m, path):
    p = m['p']
    shared = torch.equal(m['tok_embeddings'], m['output'])
    vocab = p['vocab'] if shared else -p['vocab']
    with open(path, 'wb') as f:
        f.write(struct.pack('iiiiiii', p['dim'], p['hidden'], p['n_layers'], p['n_heads'], p['n_kv_heads'], vocab, p['seq_len']))
        fp32(f, m['tok_embeddings'])
        for k in ['attention_norm', 'wq', 'wk', 'wv', 'wo', 'ffn_norm', 'w1', 'w2', 'w3']:
            for layer in m['layers']:
                fp32(f, layer[k])
        fp32(f, m['norm'])
        fp32(f, m['freqs_cos'][:p['seq_len']])
        fp32(f, m['freqs_sin'][:p['seq_len']])
        if not shared:
            fp32(f, m['output'])


def version1_export(m, path):
    p = m['p']
    shared = torch.equal(m['tok_embeddings'], m['output'])
    with open(path, 'wb') as f:
        f.write(struct.pack('I', 0x616b3432))
        f.write(struct.pack('i', 1))
        f.write(struct.pack('iiiiiii', p['dim'], p['hidden'], p['n_layers'], p['n_heads'], p['n_kv_heads'], p['vocab'], p['seq_len']))
        f.write(struct.pack('B', int(shared)))
        f.write(b'\0' * (256 - f.tell()))
        L = m['layers']
        weights = [*[l['attention_norm'] for l in L], *[l['ffn_norm'] for l in L], m['norm'], m['tok_embeddings'],
                   *[l['wq'] for l in L], *[l['wk'] for l in L], *[l['wv'] for l in L], *[l['wo'] for l in L],
                   *[l['w1'] for l in L], *[l['w2'] for l in L], *[l['w3'] for l in L]]
        if not shared:
            weights.append(m['output'])
        for w in weights:
            fp32(f, w)


def hf_state_dict(m):
    """export.py hf_export: permute_original on wq (n_heads) and wk (n_kv_heads)."""
    p = m['p']
    dim = p['dim']
    n_rep = p['n_heads'] // p['n_kv_heads']
    kv_dim = dim // n_rep

    def permute_original(w, n_heads, dim1, dim2):
        return w.view(dim1, dim2).reshape(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)

    sd = {'model.embed_tokens.weight': m['tok_embeddings'], 'model.norm.weight': m['norm']}
    for i, l in enumerate(m['layers']):
        pre = f'model.layers.{i}.'
        sd[pre + 'input_layernorm.weight'] = l['attention_norm']
        sd[pre + 'self_attn.q_proj.weight'] = permute_original(l['wq'], p['n_heads'], dim, dim)
        sd[pre + 'self_attn.k_proj.weight'] = permute_original(l['wk'], p['n_kv_heads'], kv_dim, dim)
        sd[pre + 'self_attn.v_proj.weight'] = l['wv']
        sd[pre + 'self_attn.o_proj.weight'] = l['wo']
        sd[pre + 'post_attention_layernorm.weight'] = l['ffn_norm']
        sd[pre + 'mlp.gate_proj.weight'] = l['w1']
        sd[pre + 'mlp.down_proj.weight'] = l['w2']
        sd[pre + 'mlp.up_proj.weight'] = l['w3']
    if not torch.equal(m['tok_embeddings'], m['output']):
        sd['lm_head.weight'] = m['output']
    return {k: v.contiguous().clone() for k, v in sd.items()}


llama2c = {}
for name, shared, seed in [('shared', True, 10), ('unshared', False, 11)]:
    m = llama2c_model(dim=8, hidden=16, n_layers=2, n_heads=2, n_kv_heads=1, vocab=16, seq_len=4, shared=shared, seed=seed)
    legacy_export(m, os.path.join(OUT, f'llama2c_{name}_legacy.bin'))
    version1_export(m, os.path.join(OUT, f'llama2c_{name}_v1.bin'))
    save_safetensors(os.path.join(OUT, f'llama2c_{name}_hf.safetensors'), hf_state_dict(m), {'format': 'pt'})
    llama2c[name] = {'freqs_cos': m['freqs_cos'].flatten().tolist(), 'freqs_sin': m['freqs_sin'].flatten().tolist(), **m['p']}

with open(os.path.join(OUT, 'expected.json'), 'w') as f:
    json.dump({'safetensors_mixed': expected, 'halfround': halfround, 'q8_0': q8, 'llama2c': llama2c}, f)
    f.write('\n')
print('wrote', sorted(os.listdir(OUT)))
