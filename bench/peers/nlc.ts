// node-llama-cpp (llama.cpp's prebuilt binary, from npm), the outside reference for GGUF files
// and the decode-speed peer. It is not a package.json dependency: its optional per-platform
// packages are not all on the registry this project installs from, which `npm ci` rejects, so
// CI installs it with `npm install --no-save` (see .ci/run). It is imported by name at run
// time, untyped, and callers skip their checks when it is absent.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NodeLlamaCpp = any;

/** The node-llama-cpp module, or an explanation of why it is unavailable. */
export async function loadNodeLlamaCpp(opts: { maxThreads?: number } = {}): Promise<{ nlc: NodeLlamaCpp; llama: NodeLlamaCpp } | { error: string }> {
  process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD ??= 'true';
  const name = 'node-llama-cpp';
  try {
    const nlc: NodeLlamaCpp = await import(name);
    const llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error, progressLogs: false, ...opts });
    return { nlc, llama };
  } catch (e) {
    return { error: `node-llama-cpp unavailable: ${(e as Error).message}` };
  }
}
