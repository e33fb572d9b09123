// Node `ws` permessage-deflate throughput on the same payloads as benches/deflate.rs:
// its PerMessageDeflate, as a server that agreed no context takeover both ways (and,
// for compression, also with context takeover), threshold 0, zlib level 6 (its
// default), window 15. Messages are compressed (and inflated) one after another, as
// a server sends them; prints one line per case: name, MB/s of payload, wire bytes.
//
//   (cd benches/node && npm install --no-audit --no-fund) && node benches/node/deflate.js
'use strict';
// Not among the package's exports: loaded by its path.
const path = require('path');
const PerMessageDeflate = require(path.join(path.dirname(require.resolve('ws')), 'lib', 'permessage-deflate.js'));

const ROOMS_JSON = '{"type":"message","room":"lobby","seq":1234,"ts":1732400000000,"from":"ada","text":"hello everyone, how is the deflate going today?","id":42}';

function text64k() {
  let text = '';
  for (let i = 0; text.length < 64 * 1024; i++) {
    text += `line ${i}: the quick brown fox jumps over the lazy dog ${(i * 7919) % 1000}\n`;
  }
  return text.slice(0, 64 * 1024);
}

function deflater(takeover) {
  const pmd = new PerMessageDeflate({
    threshold: 0,
    serverNoContextTakeover: !takeover,
    clientNoContextTakeover: !takeover,
    zlibDeflateOptions: { level: 6 },
  }, true, 0);
  // The offer a client makes to get what is measured (ws follows the offer).
  pmd.accept([takeover ? {} : { server_no_context_takeover: [true], client_no_context_takeover: [true] }]);
  return pmd;
}

const compress = (pmd, data) => new Promise((resolve, reject) =>
  pmd.compress(data, true, (err, out) => (err ? reject(err) : resolve(out))));
const decompress = (pmd, data) => new Promise((resolve, reject) =>
  pmd.decompress(data, true, (err, out) => (err ? reject(err) : resolve(out))));

async function measure(name, payload, step) {
  // Warm up, then run for about two seconds; the median of five such runs.
  for (let i = 0; i < 200; i++) await step();
  const rates = [];
  let wire = 0;
  for (let run = 0; run < 5; run++) {
    let n = 0;
    const start = process.hrtime.bigint();
    let elapsed = 0;
    while (elapsed < 0.4) {
      wire = (await step()).length;
      n++;
      if (n % 64 === 0) elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    }
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    rates.push((n * payload.length) / elapsed / 1e6);
  }
  rates.sort((a, b) => a - b);
  console.log(`${name} ${rates[2].toFixed(1)} MB/s wire ${wire}`);
}

(async () => {
  for (const [payload, name] of [[Buffer.from(ROOMS_JSON), 'rooms_json'], [Buffer.from(text64k()), '64KiB_text']]) {
    for (const takeover of [false, true]) {
      const pmd = deflater(takeover);
      await measure(`ws compress ${name}/${takeover ? 'takeover' : 'no_takeover'}`, payload,
        () => compress(pmd, payload));
    }
    const compressed = await compress(deflater(false), payload);
    const inflater = deflater(false);
    await measure(`ws inflate ${name}`, payload, () => decompress(inflater, compressed));
  }
})();
