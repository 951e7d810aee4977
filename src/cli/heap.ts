// V8's young generation in the commands that load a model to decode with it (generate, chat).
// Importing the modules and loading a model make many objects that survive (the vocabulary's
// strings, the model's modules and tensors), and V8 answers a high survival rate by doubling
// the young generation's semi-spaces, up to 16 MB each: ~10 MB of RSS that the process holds to
// its end, for a decoding loop that allocates little (the 110M Q4_0 GGUF: peak 140 → 129 MB).
// The growth factor is read each time V8 would grow the space, so it can be set at run time;
// starting a worker thread (the kernel pool) puts V8's flags back to their defaults, so the
// commands set it again once their threads run.
import v8 from 'node:v8';

/** Keep V8's young generation at its initial size from here on (growth factor 1; V8's default is 2). */
export function steadyYoungGeneration(): void {
  v8.setFlagsFromString('--semi-space-growth-factor=1');
}
