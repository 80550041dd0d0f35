// Saves, restores and re-saves a directory with the real @actions/cache client (run by
// tests/it/server/toolkit.rs with NODE_PATH pointing at an install of it).
const cache = require('@actions/cache');
const crypto = require('crypto');
const fs = require('fs');

(async () => {
  const [dir, key, size] = process.argv.slice(2);
  fs.mkdirSync(dir, {recursive: true});
  fs.writeFileSync(`${dir}/a.txt`, `hello ${key}`);
  fs.writeFileSync(`${dir}/big.bin`, crypto.randomBytes(Number(size)));
  console.log(`saved ${await cache.saveCache([dir], key)}`);
  fs.rmSync(dir, {recursive: true});
  const hit = await cache.restoreCache([dir], `${key}-miss`, [key.slice(0, 4)]);
  console.log(`restored ${hit} ${fs.readFileSync(`${dir}/a.txt`, 'utf8')}`);
  console.log(`again ${await cache.saveCache([dir], key)}`);
})().catch(err => {
  console.log(`FAIL ${err.stack}`);
  process.exit(1);
});
