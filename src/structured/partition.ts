// The coarsest partition of an automaton's states that refines a given one and is stable under
// its transitions (states of a block go, on every letter, to one block): Hopcroft's algorithm,
// O(A·N·log N) for A letters and N states. dfa.ts's `minimize` and regex.ts's search automata
// both minimise with it (Moore's rounds, one per state of a chain, cost O(A·N²): 100 ms for a
// search of an 80-character literal).

/**
 * `delta[q * A + a]`: the state after letter a from q (total: every entry is a state 0 .. N − 1).
 * `initial[q]`: q's block in the partition to refine (ids 0 .. k − 1, each used). Returns each
 * state's block (arbitrary ids); two states share one exactly when no sequence of letters leads
 * them to different initial blocks.
 */
export function refinePartition(N: number, A: number, delta: Int32Array, initial: Int32Array): Int32Array {
  // Inverse transitions per (letter, target).
  const invStart = new Int32Array(A * N + 1), inv = new Int32Array(N * A);
  for (let q = 0; q < N; q++) for (let x = 0; x < A; x++) invStart[x * N + delta[q * A + x] + 1]++;
  for (let k = 0; k < A * N; k++) invStart[k + 1] += invStart[k];
  const fill = invStart.slice(0, A * N);
  for (let q = 0; q < N; q++) for (let x = 0; x < A; x++) inv[fill[x * N + delta[q * A + x]]++] = q;
  // The partition: block b is elems[bStart[b] .. bEnd[b]).
  const elems = new Int32Array(N), loc = new Int32Array(N), blk = new Int32Array(N);
  const bStart = new Int32Array(N), bEnd = new Int32Array(N), marked = new Int32Array(N);
  let nb = 0;
  for (let q = 0; q < N; q++) nb = Math.max(nb, initial[q] + 1);
  const size = new Int32Array(nb);
  for (let q = 0; q < N; q++) size[initial[q]]++;
  for (let b = 0, at = 0; b < nb; b++) { bStart[b] = at; bEnd[b] = at; at += size[b]; }
  for (let q = 0; q < N; q++) { const b = initial[q]; elems[bEnd[b]] = q; loc[q] = bEnd[b]++; blk[q] = b; }
  // Splitters (block, letter): every initial block but a largest, on every letter.
  const inW = new Uint8Array(N * A);
  // The splitters to process, a stack of (block, letter) pairs: each pair is on it at most once
  // (inW), so it holds at most N · A of them. Typed arrays with a count, here and for X and the
  // touched blocks: a JS array emptied by `length = 0` at every splitter gave its store back and
  // grew it again (a third of a 200-state minimisation).
  const W = new Int32Array(2 * N * A);
  let wn = 0;
  let largest = 0;
  for (let b = 1; b < nb; b++) if (size[b] > size[largest]) largest = b;
  for (let b = 0; b < nb; b++) if (b !== largest) for (let x = 0; x < A; x++) { inW[b * A + x] = 1; W[wn++] = b; W[wn++] = x; }
  const X = new Int32Array(N), touched = new Int32Array(N);
  while (wn > 0) {
    const x = W[--wn], C = W[--wn];
    inW[C * A + x] = 0;
    // X: the states whose letter-x successor is in C (each state once: delta is a function).
    let xn = 0;
    for (let i = bStart[C]; i < bEnd[C]; i++) {
      const t = elems[i];
      for (let j = invStart[x * N + t]; j < invStart[x * N + t + 1]; j++) X[xn++] = inv[j];
    }
    let tn = 0;
    for (let k = 0; k < xn; k++) {
      const p = X[k], B = blk[p];
      if (marked[B] === 0) touched[tn++] = B;
      const j = bStart[B] + marked[B], i = loc[p], q = elems[j];
      elems[j] = p; loc[p] = j; elems[i] = q; loc[q] = i;
      marked[B]++;
    }
    for (let k = 0; k < tn; k++) {
      const B = touched[k];
      const m = marked[B], sz = bEnd[B] - bStart[B];
      marked[B] = 0;
      if (m === sz) continue;
      // The marked part becomes block B2; B keeps the rest.
      const B2 = nb++;
      bStart[B2] = bStart[B]; bEnd[B2] = bStart[B] + m; bStart[B] += m;
      for (let i = bStart[B2]; i < bEnd[B2]; i++) blk[elems[i]] = B2;
      const S = m <= sz - m ? B2 : B;
      for (let y = 0; y < A; y++) {
        if (inW[B * A + y]) { inW[B2 * A + y] = 1; W[wn++] = B2; W[wn++] = y; }
        else { inW[S * A + y] = 1; W[wn++] = S; W[wn++] = y; }
      }
    }
  }
  return blk;
}
