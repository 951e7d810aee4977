// A binary max-heap ordered by `better(a, b)` (a comes out before b): the priority queue of the
// score-ordered BPE merges (SentencePiece, llama2.c).
export class MaxHeap<T> {
  private items: T[] = [];
  constructor(private readonly better: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  push(x: T): void {
    const h = this.items, better = this.better;
    h.push(x);
    for (let i = h.length - 1; i > 0; ) {
      const par = (i - 1) >> 1;
      if (!better(h[i], h[par])) break;
      [h[i], h[par]] = [h[par], h[i]];
      i = par;
    }
  }

  /** Remove and return the best item (undefined when empty). */
  pop(): T | undefined {
    const h = this.items, better = this.better;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        let m = i;
        if (l < h.length && better(h[l], h[m])) m = l;
        if (l + 1 < h.length && better(h[l + 1], h[m])) m = l + 1;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
