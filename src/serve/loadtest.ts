// A bounded load test for an OpenAI-compatible server: `clients` concurrent clients share a fixed
// number of requests (each client sends its next request when the previous one is answered) and
// the result is latency percentiles, throughput and every failure. Used by `tslm bench serve` and
// by the server tests.

export interface LoadTestOptions {
  /** Server base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  clients: number;
  requests: number;
  /** The request body for request i (default: a short seeded chat completion). */
  body?: (i: number) => Record<string, unknown>;
  /** Endpoint path (default /v1/chat/completions). */
  path?: string;
  /** Ask for server-sent events and also measure time to first token. */
  stream?: boolean;
}

export interface LoadTestResult {
  clients: number;
  requests: number;
  ok: number;
  failed: number;
  errors: string[];
  seconds: number;
  requestsPerSecond: number;
  completionTokens: number;
  tokensPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Time to the first content chunk (streaming only). */
  firstTokenMs: { p50: number; p99: number } | null;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export async function loadTest(o: LoadTestOptions): Promise<LoadTestResult> {
  const body = o.body ?? ((i: number) => ({ messages: [{ role: 'user', content: `Request ${i}: say something.` }], max_tokens: 16, seed: i }));
  const endpoint = `${o.url}${o.path ?? '/v1/chat/completions'}`;
  const latencies: number[] = [], firsts: number[] = [], errors: string[] = [];
  let next = 0, tokens = 0;
  const t0 = performance.now();
  async function one(i: number): Promise<void> {
    const start = performance.now();
    const b = { ...body(i), ...(o.stream ? { stream: true, stream_options: { include_usage: true } } : {}) };
    const res = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
    if (!res.ok) throw new Error(`request ${i}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
    if (o.stream) {
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      let buf = '', first = -1, done = false;
      while (!done) {
        const r = await reader.read();
        if (r.done) break;
        buf += dec.decode(r.value, { stream: true });
        let k: number;
        while ((k = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, k);
          buf = buf.slice(k + 2);
          if (!ev.startsWith('data: ')) continue;
          const data = ev.slice(6);
          if (data === '[DONE]') { done = true; break; }
          const j = JSON.parse(data);
          if (j.error) throw new Error(`request ${i}: stream error ${j.error.message}`);
          if (first < 0 && j.choices?.some((c: { delta?: { content?: string }; text?: string }) => c.delta?.content || c.text)) first = performance.now() - start;
          if (j.usage) tokens += j.usage.completion_tokens;
        }
      }
      if (!done) throw new Error(`request ${i}: the stream ended without [DONE]`);
      if (first >= 0) firsts.push(first);
    } else {
      const j = await res.json() as { usage?: { completion_tokens: number } };
      tokens += j.usage?.completion_tokens ?? 0;
    }
    latencies.push(performance.now() - start);
  }
  async function client(): Promise<void> {
    while (next < o.requests) {
      const i = next++;
      try {
        await one(i);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
  }
  await Promise.all(Array.from({ length: o.clients }, client));
  const seconds = (performance.now() - t0) / 1000;
  const s = [...latencies].sort((a, b) => a - b), f = [...firsts].sort((a, b) => a - b);
  return {
    clients: o.clients, requests: o.requests, ok: latencies.length, failed: errors.length, errors, seconds,
    requestsPerSecond: latencies.length / seconds, completionTokens: tokens, tokensPerSecond: tokens / seconds,
    latencyMs: { p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN, mean: s.reduce((a, b) => a + b, 0) / (s.length || 1) },
    firstTokenMs: o.stream ? { p50: percentile(f, 50), p99: percentile(f, 99) } : null,
  };
}
