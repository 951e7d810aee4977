// The mixed-modal model's pieces (src/vision/mixed_train.ts): the tokenizer.json of the shared
// vocabulary, the two kinds of documents, and a whole (tiny) run as a user starts it, then
// tslm generate --image-out / --image on what it wrote, with the errors a user can meet.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { init, shutdown, loadModel, generate } from '../../src/index.js';
import { applyChatTemplate } from '../../src/tokenizers/chat.js';
import { HFTokenizer, trainByteLevelBPE } from '../../src/tokenizers/index.js';
import { MixedVocab, mixedTokenizerJson, mixedDocuments, caption, readPng, writePng, loadMnist, readMixedModal, loadMixedModal, contentParts, MIXED_CHAT_TEMPLATE } from '../../src/vision/index.js';
import { ImageSpanProcessor } from '../../src/vision/mixed.js';
import { main } from '../../src/cli/main.js';
import { tempDir, tinyLlamaConfig, tinyLlamaTensors } from '../io/util.js';
import { writeHfDir } from '../../src/io/index.js';
import { decodePng } from '../../src/vision/index.js';
import OpenAI from 'openai';
import { serveProcess } from '../serve/fixture.js';
import { launchChromium, noChromium, collectPageErrors } from '../chromium.js';

before(async () => { await init({ threads: 1 }); });
after(async () => { await shutdown(); });

const textTok = trainByteLevelBPE(Array(5).fill(Array.from({ length: 10 }, (_, d) => caption(d)).join('\n')).join('\n'), { vocabSize: 270, specialTokens: ['<|endoftext|>'] });

test('the mixed tokenizer.json: text ids as before, then <image>, </image> and one token per code where MixedVocab puts them', () => {
  const v = new MixedVocab(textTok.vocabSize, 16, 2);
  const tok = new HFTokenizer(mixedTokenizerJson(textTok, 16));
  assert.equal(tok.vocabSize, v.size);
  assert.equal(tok.tokenToId('<image>'), v.imageStart);
  assert.equal(tok.tokenToId('</image>'), v.imageEnd);
  for (const c of [0, 7, 15]) assert.equal(tok.tokenToId(`<img_${c}>`), v.codeOffset + c);
  for (const d of [0, 7]) assert.deepEqual(tok.encode(caption(d)), textTok.encode(caption(d)));
  assert.deepEqual(tok.encode(`${caption(3)}<image><img_1><img_2><img_3><img_4></image>`), [...textTok.encode(caption(3)), ...v.imageTokens([1, 2, 3, 4])]);
});

test('documents: per image one drawing (caption, image, eos) and one captioning (image, caption, eos), shuffled', () => {
  const v = new MixedVocab(textTok.vocabSize, 16, 2);
  const codes = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const labels = Int32Array.from([3, 8, 0]);
  const docs = mixedDocuments(codes, labels, v, (s) => textTok.encode(s), 0, 1);
  assert.equal(docs.length, 6);
  const seen = new Set<string>();
  for (const d of docs) {
    assert.equal(d[d.length - 1], 0);
    const img = v.images(d);
    assert.equal(img.length, 1);
    const i = [0, 1, 2].find((k) => img[0].codes.join() === [...codes.subarray(4 * k, 4 * k + 4)].join())!;
    assert.ok(i !== undefined);
    const text = textTok.decode(d.filter((t) => t < v.textSize && t !== 0));
    assert.equal(text, caption(labels[i]));
    const kind = d[0] === v.imageStart ? 'caption' : 'draw';
    seen.add(`${kind}${i}`);
  }
  assert.equal(seen.size, 6, 'each image once as each kind');
});

test('tslm mixed-modal train (tiny), then tslm generate --image-out and --image on its model; errors named', async (t) => {
  const dir = tempDir(t);
  const out = path.join(dir, 'run');
  const logs: string[] = [];
  const err = console.error, log = console.log, write = process.stderr.write;
  console.error = (...a: unknown[]) => logs.push(a.join(' '));
  (process.stderr as { write: unknown }).write = (s: string) => { logs.push(String(s)); return true; };
  try {
    const rc = await main(['mixed-modal', 'train', '--out', out, '--steps', '3', '--batch-size', '2', '--seq-len', '64', '--image-tokenizer-steps', '2', '--eval-per-class', '1', '--threads', '1',
      '--limit-images', '90', '--classifier-steps', '5', '--stability-steps', '2']);
    assert.equal(rc, 0, logs.join('\n'));
  } finally {
    console.error = err; console.log = log; (process.stderr as { write: unknown }).write = write;
  }
  const ck = path.join(out, 'checkpoint');
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'mixed_modal.json', 'image_tokenizer/config.json', 'image_tokenizer/model.safetensors']) assert.ok(existsSync(path.join(ck, f)), f);
  const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
  for (const k of ['captionAccuracy', 'drawAgreement', 'drawAgreementUnguided', 'classifierAccuracy']) assert.ok(report[k] >= 0 && report[k] <= 1, k);
  assert.equal(report.guidance, 3);
  assert.match(readFileSync(path.join(out, 'report.html'), 'utf8'), /data:image\/png;base64/);
  assert.deepEqual(report.stability.map((r: { name: string; losses: number[] }) => [r.name, r.losses.length]), [['QK-norm + z-loss', 2], ['neither', 2]]);
  assert.match(readFileSync(path.join(out, 'report.html'), 'utf8'), /Stability: QK-norm \+ z-loss against neither/);
  const mm = readMixedModal(ck)!;
  assert.equal(JSON.parse(readFileSync(path.join(ck, 'config.json'), 'utf8')).vocab_size, mm.vocab.size);
  assert.equal(JSON.parse(readFileSync(path.join(ck, 'config.json'), 'utf8')).model_type, 'chameleon');

  // As a user runs it, in a fresh process.
  const cli = path.join(process.cwd(), 'bin', 'tslm.js');
  const png = path.join(dir, 'seven.png');
  let r = spawnSync(process.execPath, [cli, 'generate', '--model', ck, '--prompt', caption(7), '--image-out', png, '--temperature', '1', '--threads', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /a handwritten 7\[image\]/);
  assert.match(r.stderr, /image: .*seven\.png \(28×28, 49 image tokens, classifier-free guidance 3\)/);
  const img = readPng(png);
  assert.deepEqual([img.width, img.height], [28, 28]);
  const digit = path.join(dir, 'digit.png');
  const { test: held } = loadMnist();
  writePng(digit, { width: 28, height: 28, pixels: held.pixels.slice(0, 784) });
  r = spawnSync(process.execPath, [cli, 'generate', '--model', ck, '--image', digit, '--max-tokens', '6', '--threads', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /image/, 'a caption is text only');
  // Errors: a picture of the wrong size; an image asked of a text-only model.
  writePng(path.join(dir, 'big.png'), { width: 32, height: 32, pixels: new Float32Array(32 * 32) });
  r = spawnSync(process.execPath, [cli, 'generate', '--model', ck, '--image', path.join(dir, 'big.png'), '--threads', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /big\.png: the image is 32×32; the image tokenizer takes 28×28 grey images/);
  const textOnly = path.join(dir, 'text-only');
  await writeHfDir(textOnly, { config: tinyLlamaConfig({ vocab_size: textTok.vocabSize }), tensors: tinyLlamaTensors(tinyLlamaConfig({ vocab_size: textTok.vocabSize }), 1) });
  textTok.save(path.join(textOnly, 'tokenizer.json'));
  r = spawnSync(process.execPath, [cli, 'generate', '--model', textOnly, '--prompt', 'draw a 7', '--image-out', png, '--threads', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--image and --image-out need a mixed-modal model .*text-only \(no mixed_modal\.json\)/);
  r = spawnSync(process.execPath, [cli, 'generate', '--model', ck, '--prompt', caption(7), '--negative-prompt', 'x', '--threads', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--negative-prompt is the prompt --guidance pushes away from: give --guidance too/);
  r = spawnSync(process.execPath, [cli, 'chat', '--model', textOnly, '--image-dir', path.join(dir, 'imgs'), '--threads', '1'], { encoding: 'utf8', input: 'x\n' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--image-dir needs a mixed-modal model/);
  r = spawnSync(process.execPath, [cli, 'chat', '--model', textOnly, '--guidance', '2', '--threads', '1'], { encoding: 'utf8', input: 'x\n' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--guidance: chat guides the image codes of a mixed-modal model/);
  // tslm chat on the mixed-modal model: images shown as [image] and written to --image-dir; never raw image tokens.
  r = spawnSync(process.execPath, [cli, 'chat', '--model', ck, '--image-dir', path.join(dir, 'imgs'), '--max-tokens', '60', '--temperature', '1', '--threads', '1'], { encoding: 'utf8', input: `${caption(2)}\n` });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /<img_|<image>/);
  const drawn = (r.stdout.match(/\[image\]/g) ?? []).length;
  assert.equal(existsSync(path.join(dir, 'imgs', 'image-1.png')), drawn > 0);

  // The server's chat API: an image part in (as a PNG data URL), image parts out; a text-only model refuses image parts.
  const { proc, url } = await serveProcess(['--model', ck, '--models-dir', dir, '--threads', '1']);
  try {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x' });
    const pngUrl = `data:image/png;base64,${readFileSync(digit).toString('base64')}`;
    const cap = await client.chat.completions.create({ model: 'checkpoint', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: pngUrl } }] }], max_tokens: 6 });
    assert.equal(typeof cap.choices[0].message.content, 'string', 'a caption is text');
    assert.ok(cap.usage!.prompt_tokens >= 51, `the image's 51 tokens are in the prompt (${cap.usage!.prompt_tokens})`);
    // Asking for a drawing: sampled until an image is complete (the tiny model may write text first).
    const draw = await client.chat.completions.create({ model: 'checkpoint', messages: [{ role: 'user', content: caption(4) }], max_tokens: 120, temperature: 1, seed: 3 });
    const content = draw.choices[0].message.content as unknown;
    if (Array.isArray(content)) {
      const img = content.find((x: { type: string }) => x.type === 'image_url') as { image_url: { url: string } };
      const got = decodePng(Buffer.from(img.image_url.url.split(',')[1], 'base64'), 'answer');
      assert.deepEqual([got.width, got.height], [28, 28]);
    } else assert.equal(typeof content, 'string');
    await assert.rejects(client.chat.completions.create({ model: 'text-only', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: pngUrl } }] }] }), /text-only: image content parts need a mixed-modal model/);
    await assert.rejects(client.chat.completions.create({ model: 'checkpoint', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/x.png' } }] }] }), /must be a PNG as a data: URL/);
    await assert.rejects(client.chat.completions.create({ model: 'checkpoint', messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 's', schema: { type: 'string' } } } }), /is mixed-modal: response_format and tools are not available with it/);
    // Drawings are guided as tslm chat guides them (scale 3 on image codes, negative: the document
    // start; guidance_scale 1: off): the server's answer is the library's for the same seed.
    {
      const { model, tokenizer } = await loadModel(ck);
      const mm = (await loadMixedModal(ck))!;
      const ids = tokenizer!.encode(applyChatTemplate([{ role: 'user', content: caption(4) }], { template: MIXED_CHAT_TEMPLATE, addGenerationPrompt: true, bosToken: '<|endoftext|>', eosToken: '<|endoftext|>' }), { specials: true });
      const local = (seed: number, scale: number) => {
        const r = generate(model, ids, { maxNewTokens: 100, temperature: 1, seed, stopIds: [tokenizer!.eosId!], tokenizer: tokenizer!, processors: [new ImageSpanProcessor(mm.vocab)],
          guidance: scale !== 1 ? { scale, negative: [ids[0]], when: (q) => mm.vocab.state(q).inImage } : undefined });
        return mm.vocab.images(r.ids[0]).length ? contentParts(mm.imageTokenizer, mm.vocab, r.ids[0], (x) => tokenizer!.decode(x)) : r.text![0];
      };
      let seed = 0;
      while (!Array.isArray(local(seed, 3))) assert.ok(++seed < 60, 'no seed draws an image');
      const guided = local(seed, 3), plain = local(seed, 1);
      assert.notDeepEqual(guided, plain, 'guidance changed nothing');
      const ask = async (extra: Record<string, unknown>) => (await client.chat.completions.create({ model: 'checkpoint', messages: [{ role: 'user', content: caption(4) }], max_tokens: 100, temperature: 1, seed, ...extra } as never)).choices[0].message.content as unknown;
      assert.deepEqual(await ask({}), guided, `seed ${seed}: the server's drawing is the library's with guidance 3`);
      assert.deepEqual(await ask({ guidance_scale: 1 }), plain, `seed ${seed}: guidance_scale 1 draws without guidance`);
      await assert.rejects(client.chat.completions.create({ model: 'text-only', messages: [{ role: 'user', content: 'x' }], guidance_scale: 2 } as never), /'guidance_scale' guides the image codes of a mixed-modal model; model 'text-only' is text-only/);
      model.dispose();
    }
    const models = await (await fetch(`${url}/v1/models`)).json() as { data: Array<{ id: string; modalities?: string[] }> };
    assert.deepEqual(models.data.find((m) => m.id === 'checkpoint')?.modalities, ['text', 'image']);

    // The playground (headless Chromium): a PNG chosen in the page goes with the message as an
    // image part; the images the model draws are shown, as many as the API gives for the same request.
    if (noChromium) { t.diagnostic(`playground part skipped: ${noChromium}`); return; }
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      collectPageErrors(page, errors);
      const bodies: string[] = [];
      page.on('request', (q) => { if (q.url().endsWith('/v1/chat/completions')) bodies.push(q.postData() ?? ''); });
      await page.goto(`${url}/`);
      await page.waitForSelector('[data-testid=attach]', { state: 'visible', timeout: 10000 });
      const finished = (n: number) => page.waitForFunction((k) => {
        const d = document.querySelectorAll<HTMLElement>('[data-testid=assistant-message]')[k];
        return d?.dataset.finish ? d.dataset.finish : null;
      }, n, { timeout: 60000 }).then((h) => h.jsonValue());
      await page.setInputFiles('[data-testid=attach]', digit);
      await page.waitForSelector('[data-testid=attachment] img');
      await page.fill('[data-testid=max_tokens]', '6');
      await page.click('[data-testid=send]');
      assert.notEqual(await finished(0), 'error', await page.textContent('[data-testid=assistant-message]') ?? '');
      const sent = JSON.parse(bodies[0]).messages.at(-1);
      assert.deepEqual(sent, { role: 'user', content: [{ type: 'image_url', image_url: { url: pngUrl } }] }, 'the image alone, as the file\'s bytes');
      assert.equal(await page.locator('[data-testid=user-message] img.sent-image').count(), 1);
      assert.equal(await page.locator('[data-testid=attachment] img').count(), 0, 'the attachment goes with one message');
      // A drawing: the first seed with which the API's answer holds an image (the tiny model often
      // writes text), asked again in the page, which must show as many images.
      let drawSeed = 3, want = Array.isArray(content) ? content.filter((x: { type: string }) => x.type === 'image_url').length : 0;
      for (let s = 4; s < 40 && want === 0; s++) {
        const r = await client.chat.completions.create({ model: 'checkpoint', messages: [{ role: 'user', content: caption(4) }], max_tokens: 120, temperature: 1, seed: s });
        const c = r.choices[0].message.content as unknown;
        if (Array.isArray(c)) { drawSeed = s; want = c.filter((x: { type: string }) => x.type === 'image_url').length; }
      }
      await page.click('[data-testid=clear]');
      await page.fill('[data-testid=max_tokens]', '120');
      await page.fill('[data-testid=temperature]', '1');
      await page.fill('[data-testid=top_p]', '1');
      await page.fill('[data-testid=seed]', String(drawSeed));
      await page.fill('[data-testid=prompt]', caption(4));
      await page.click('[data-testid=send]');
      assert.notEqual(await finished(0), 'error', await page.textContent('[data-testid=assistant-message]') ?? '');
      assert.equal(await page.locator('[data-testid=assistant-message] img.generated-image').count(), want);
      if (want) {
        const size = await page.evaluate(() => { const i = document.querySelector<HTMLImageElement>('img.generated-image')!; return [i.naturalWidth, i.naturalHeight]; });
        assert.deepEqual(size, [28, 28]);
      }
      const shots = process.env.TSLM_PLAYGROUND_SHOTS;
      if (shots) await page.screenshot({ path: path.join(shots, 'playground-mixed-modal.png') });
      t.diagnostic(`playground: the drawing request (seed ${drawSeed}) gave ${want} image(s)`);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  } finally {
    proc.kill();
  }
});

test('image parts go back where they stood in their message: spliceAt', async () => {
  const { spliceAt } = await import('../../src/serve/openai.js');
  // message 0 was [text "a ", image, text " b", image]; message 1 was [image, text "c"]
  const msgs = [{ role: 'user', content: 'a  b' }, { role: 'user', content: 'c' }];
  const out = spliceAt(msgs, [{ message: 0, at: 2 }, { message: 0, at: 4 }, { message: 1, at: 0 }], ['<I1>', '<I2>', '<I3>']);
  assert.deepEqual(out.map((m) => m.content), ['a <I1> b<I2>', '<I3>c']);
  assert.deepEqual(msgs.map((m) => m.content), ['a  b', 'c'], 'the parsed messages are left as they were');
});

test('the mixed-modal chat template is the documents\' form: <|endoftext|>, contents without roles, each answer ending its document', async () => {
  const { applyChatTemplate } = await import('../../src/tokenizers/chat.js');
  const { MIXED_CHAT_TEMPLATE } = await import('../../src/vision/index.js');
  const text = applyChatTemplate([{ role: 'user', content: caption(3) }, { role: 'assistant', content: '<image><img_1></image>' }, { role: 'user', content: caption(8) }],
    { template: MIXED_CHAT_TEMPLATE, addGenerationPrompt: true, bosToken: '<|endoftext|>', eosToken: '<|endoftext|>' });
  assert.equal(text, `<|endoftext|>${caption(3)}<image><img_1></image><|endoftext|>${caption(8)}`);
});

test('shiftedCopies: each copy is its digit moved by at most 2 pixels (not 0), labels kept, nothing else changed', async () => {
  const { shiftedCopies } = await import('../../src/vision/mixed_train.js');
  const S = 6, n = 3;
  const pixels = new Float32Array(n * S * S);
  for (let i = 0; i < pixels.length; i++) pixels[i] = ((i * 7919) % 13) / 13 + 0.01; // no zeros
  const set = { pixels, labels: Int32Array.from([4, 7, 1]), n, size: S };
  const out = shiftedCopies(set, 2, 5);
  assert.equal(out.n, 9);
  assert.deepEqual(Array.from(out.labels), [4, 7, 1, 4, 7, 1, 4, 7, 1]);
  assert.deepEqual(out.pixels.subarray(0, n * S * S), pixels, 'the originals come first, unchanged');
  for (let k = n; k < out.n; k++) {
    const src = pixels.subarray((k % n) * S * S, (k % n + 1) * S * S), img = out.pixels.subarray(k * S * S, (k + 1) * S * S);
    // Find the shift that explains the copy: inside the frame every pixel is the source's, outside black.
    const fits: [number, number][] = [];
    for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) {
      let ok = true;
      for (let y = 0; y < S && ok; y++) for (let x = 0; x < S && ok; x++) {
        const sy = y - dy, sx = x - dx;
        ok = img[y * S + x] === (sy >= 0 && sy < S && sx >= 0 && sx < S ? src[sy * S + sx] : 0);
      }
      if (ok) fits.push([dx, dy]);
    }
    assert.equal(fits.length, 1, `copy ${k}: shifts that fit ${JSON.stringify(fits)}`);
    assert.notDeepEqual(fits[0], [0, 0], `copy ${k} is not shifted`);
  }
  assert.equal(shiftedCopies(set, 0, 5), set);
});
