// The page: starts the training worker (a module Web Worker, so the page stays responsive) and
// shows what it reports.
const out = document.getElementById('out')!;
const show = (r: unknown) => { (window as unknown as { __result: unknown }).__result = r; out.textContent = JSON.stringify(r); };
const worker = new Worker(new URL('./train.js', import.meta.url), { type: 'module' });
worker.onmessage = (e: MessageEvent) => show(e.data);
worker.onerror = (e: ErrorEvent) => show({ ok: false, error: `the training worker failed: ${e.message || 'it did not load'}` });
