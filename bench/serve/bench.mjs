// Times `runner serve` with the real @actions/cache client (pinned in package-lock.json) over
// v2 (Twirp + Azure-style blobs). Run by bench/serve/run.sh, which builds the binaries:
//   node bench/serve/bench.mjs <runner> <serve_seed> <work dir>
// Phases, each printed as it ends:
//   client  saveCache / restoreCache of one random file (SERVE_BENCH_MIB, 200), medians of
//           SERVE_BENCH_RUNS (3), against runner serve and, if COMPARE_URL names another running
//           cache server, against it in the same run (with COMPARE_TOKEN, else a `runner token`
//           JWT, which servers that skip token validation accept); with SINK_URL (a server that
//           only stores request bodies, bench/serve/sink.sh; SINK_BODIES: its body directory,
//           emptied after each save), saveCache against it too: the floor of a save;
//   http    the client's own upload (uploadCacheArchiveSDK: 64 MiB blocks, 8 at once) and
//           download (downloadCacheHttpClient; and once more discarding the bytes) of that archive
//           alone, and the client's tar + zstd alone (the floor); with STATIC_URL (a file
//           served by a static file server, e.g. nginx with sendfile), the same client's
//           download of it too: the most any server can give this client on this machine;
//   lookup  p50/p99 of GetCacheEntryDownloadURL and v1 GET cache with SERVE_BENCH_ENTRIES
//           (100000) rows in the index, SERVE_BENCH_LOOKUPS (4000) requests 1 and 8 at a time;
//   rss     SERVE_BENCH_UPLOADS (16) concurrent uploads of SERVE_BENCH_UPLOAD_MIB (1024) each
//           into a freshly started server; its VmHWM from /proc/<pid>/status.

import {spawn, spawnSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import {pathToFileURL} from 'node:url'
import {freePort, mintToken} from '../../tests/compat/harness.mjs'

const [runner, seeder, workArg] = process.argv.slice(2)
if (!runner || !seeder || !workArg) {
  console.error('usage: bench.mjs <runner> <serve_seed> <work dir>')
  process.exit(2)
}
const num = (name, dflt) => {
  const v = Number(process.env[name] ?? dflt)
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a number`)
  return v
}
const MIB = 1024 * 1024
const SIZE_MIB = num('SERVE_BENCH_MIB', 200)
const RUNS = num('SERVE_BENCH_RUNS', 3)
const ENTRIES = num('SERVE_BENCH_ENTRIES', 100000)
const LOOKUPS = num('SERVE_BENCH_LOOKUPS', 4000)
const UPLOADS = num('SERVE_BENCH_UPLOADS', 16)
const UPLOAD_MIB = num('SERVE_BENCH_UPLOAD_MIB', 1024)
const PHASES = (process.env.SERVE_BENCH_PHASES || 'client,http,lookup,rss').split(',')
const COMPARE_URL = process.env.COMPARE_URL?.replace(/\/+$/, '')
const COMPARE_TOKEN = process.env.COMPARE_TOKEN || ''
const STATIC_URL = process.env.STATIC_URL || ''
const SINK_URL = process.env.SINK_URL?.replace(/\/+$/, '')
const SINK_BODIES = process.env.SINK_BODIES || ''

const work = fs.mkdtempSync(path.join(path.resolve(workArg), 'serve-'))
const secret = randomBytes(16).toString('hex')
process.env.RUNNER_TEMP = path.join(work, 'tmp')
fs.mkdirSync(process.env.RUNNER_TEMP, {recursive: true})

// The toolkit prints progress and annotations on stdout; keep ours apart and show theirs only
// when something fails.
let captured = []
const say = process.stdout.write.bind(process.stdout)
process.stdout.write = (chunk, ...rest) => {
  captured.push(String(chunk))
  const callback = rest.find(r => typeof r === 'function')
  if (callback) callback()
  return true
}
const print = line => say(line + '\n')

const lib = rel =>
  import(pathToFileURL(path.join(import.meta.dirname, 'node_modules/@actions/cache/lib', rel)).href)
const cache = await lib('cache.js')
const {uploadCacheArchiveSDK} = await lib('internal/uploadUtils.js')
const {downloadCacheHttpClient} = await lib('internal/downloadUtils.js')
const {createTar, extractTar} = await lib('internal/tar.js')
const {getCompressionMethod, getCacheVersion} = await lib('internal/cacheUtils.js')

const median = xs => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((xs.length - 1) * p))]
const secs = t => `${t.toFixed(3)} s`
const rate = (bytes, t) => `${(bytes / t / 1e6).toFixed(0)} MB/s`
const now = () => performance.now() / 1000


const token = args => mintToken(runner, secret, args)

const store = path.join(work, 'store')
async function startServer() {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const child = spawn(runner, ['serve', '--listen', `127.0.0.1:${port}`], {
    env: {...process.env, RUNNER_CACHE_DIR: store, RUNNER_SERVE_TOKEN_SECRET: secret},
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let log = ''
  // SERVE_BENCH_SERVER_LOG=1 passes the server's request log through.
  child.stderr.on('data', d => {
    log = (log + d).slice(-20000)
    if (process.env.SERVE_BENCH_SERVER_LOG) process.stderr.write(d)
  })
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return {base, child, log: () => log}
    } catch {}
    await new Promise(r => setTimeout(r, 100))
  }
  child.kill('SIGTERM')
  throw new Error(`runner serve did not become healthy:\n${log}`)
}
async function stopServer(server) {
  const done = new Promise(r => server.child.once('exit', r))
  server.child.kill('SIGTERM')
  await done
}

function useServer(base, tok) {
  process.env.ACTIONS_CACHE_SERVICE_V2 = 'true'
  process.env.ACTIONS_RESULTS_URL = `${base}/`
  process.env.ACTIONS_CACHE_URL = `${base}/`
  process.env.ACTIONS_RUNTIME_TOKEN = tok
}

const sha = file => createHash('sha256').update(fs.readFileSync(file)).digest('hex')
function writeRandom(file, mib) {
  fs.mkdirSync(path.dirname(file), {recursive: true})
  const fd = fs.openSync(file, 'w')
  for (let i = 0; i < mib; i++) fs.writeSync(fd, randomBytes(MIB))
  fs.closeSync(fd)
}

async function twirp(base, tok, method, body) {
  const res = await fetch(`${base}/twirp/github.actions.results.api.v1.CacheService/${method}`, {
    method: 'POST',
    headers: {'Content-Type': 'application/json', Authorization: `Bearer ${tok}`},
    body: JSON.stringify(body)
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method}: HTTP ${res.status}: ${text}`)
  return JSON.parse(text)
}

const ws = path.join(work, 'ws')
const dataFile = path.join(ws, 'data', 'random.bin')
fs.mkdirSync(ws, {recursive: true})
process.chdir(ws)
process.env.GITHUB_WORKSPACE = ws
const results = {}

// --- client: saveCache + restoreCache through the real client -----------------------------
// `restore: false` only saves (for a server that cannot restore, such as bench/serve/sink.sh);
// `afterSave` runs after each save, outside the time.
async function clientRuns(label, base, tok, {restore: restores = true, afterSave} = {}) {
  useServer(base, tok)
  const save = []
  const restore = []
  for (let run = 0; run < RUNS; run++) {
    writeRandom(dataFile, SIZE_MIB)
    const want = restores ? sha(dataFile) : null
    const key = `bench-${label}-${run}-${randomBytes(4).toString('hex')}`
    captured = []
    let t = now()
    const id = await cache.saveCache(['data'], key)
    save.push(now() - t)
    if (!(id > 0)) throw new Error(`${label}: saveCache returned ${id}\n${captured.join('')}`)
    afterSave?.()
    if (!restores) continue
    fs.rmSync(path.join(ws, 'data'), {recursive: true})
    t = now()
    const hit = await cache.restoreCache(['data'], key)
    restore.push(now() - t)
    if (hit !== key) throw new Error(`${label}: restoreCache returned ${hit}\n${captured.join('')}`)
    if (sha(dataFile) !== want) throw new Error(`${label}: restored bytes differ`)
  }
  return {save: median(save), restore: restores ? median(restore) : null}
}

// --- http: the client's transfer functions alone, and its tar + zstd alone -----------------
async function httpRuns(base, tok) {
  const method = await getCompressionMethod()
  const version = getCacheVersion(['data'], method)
  const archiveDir = fs.mkdtempSync(path.join(process.env.RUNNER_TEMP, 'archive-'))
  const archive = path.join(archiveDir, 'cache.tzst')
  const back = path.join(archiveDir, 'back.tzst')
  const out = {tar: [], untar: [], up: [], upfin: [], down: [], raw: [], static: []}
  let staticBytes = 0
  let size = 0
  let contentLength = null
  for (let run = 0; run < RUNS; run++) {
    writeRandom(dataFile, SIZE_MIB)
    fs.rmSync(archive, {force: true})
    let t = now()
    await createTar(archiveDir, ['data'], method)
    out.tar.push(now() - t)
    size = fs.statSync(archive).size
    const key = `bench-http-${run}-${randomBytes(4).toString('hex')}`
    const created = await twirp(base, tok, 'CreateCacheEntry', {key, version})
    t = now()
    await uploadCacheArchiveSDK(created.signed_upload_url, archive, {
      uploadChunkSize: 64 * MIB,
      uploadConcurrency: 8,
      archiveSizeBytes: size
    })
    out.up.push(now() - t)
    await twirp(base, tok, 'FinalizeCacheEntryUpload', {key, version, size_bytes: String(size)})
    out.upfin.push(now() - t)
    const found = await twirp(base, tok, 'GetCacheEntryDownloadURL', {key, restore_keys: [], version})
    const head = await fetch(found.signed_download_url, {method: 'HEAD'})
    contentLength = head.headers.get('content-length')
    fs.rmSync(back, {force: true})
    t = now()
    await downloadCacheHttpClient(found.signed_download_url, back)
    out.down.push(now() - t)
    if (fs.statSync(back).size !== size) throw new Error('http: short download')
    if (STATIC_URL) {
      const copy = path.join(archiveDir, 'static.bin')
      t = now()
      await downloadCacheHttpClient(STATIC_URL, copy)
      out.static.push(now() - t)
      staticBytes = fs.statSync(copy).size
      fs.rmSync(copy)
    }
    // The same GET with the bytes dropped on arrival: the server and loopback without the
    // client's file writes.
    t = now()
    const got = await get(undefined, found.signed_download_url)
    out.raw.push(now() - t)
    if (got.n !== size) throw new Error('http: short raw download')
    fs.rmSync(path.join(ws, 'data'), {recursive: true})
    t = now()
    await extractTar(back, method)
    out.untar.push(now() - t)
  }
  fs.rmSync(archiveDir, {recursive: true})
  return {
    size,
    contentLength,
    tar: median(out.tar),
    untar: median(out.untar),
    up: median(out.up),
    upfin: median(out.upfin),
    down: median(out.down),
    raw: median(out.raw),
    static: out.static.length ? {s: median(out.static), bytes: staticBytes} : null
  }
}

// --- lookup: latency of the restore lookups with many rows in the index --------------------
const FAMILIES = ['node-modules', 'cargo-registry', 'pip', 'gradle', 'ccache']
function get(agent, url, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {agent, ...opts}, res => {
      let n = 0
      res.on('data', d => (n += d.length))
      res.on('end', () => resolve({status: res.statusCode, n}))
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}
async function lookupRuns(base) {
  // Every entry of org/repo-0 (i % 10 == 0) is readable from feature-b (its own scope or main).
  const tok = token(['--repo', 'org/repo-0', '--ref', 'refs/heads/feature-b', '--default-branch', 'refs/heads/main'])
  const pick = s => {
    const i = ((s * 7919) % Math.floor(ENTRIES / 10)) * 10
    const family = FAMILIES[i % 5]
    return {key: `${family}-Linux-${i.toString(16).padStart(8, '0')}`, prefix: `${family}-Linux-`, version: (i % 5).toString(16).padStart(64, '0')}
  }
  const agent = new http.Agent({keepAlive: true, maxSockets: 8})
  const auth = {Authorization: `Bearer ${tok}`}
  const routes = {
    'v2 GetCacheEntryDownloadURL': s => {
      const e = pick(s)
      // Half exact hits, half a primary miss then a restore-key prefix hit.
      const key = s % 2 ? e.key : `${e.key}-nope`
      const body = JSON.stringify({key, restore_keys: [e.prefix], version: e.version})
      return get(agent, `${base}/twirp/github.actions.results.api.v1.CacheService/GetCacheEntryDownloadURL`, {
        method: 'POST',
        headers: {...auth, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body)},
        body
      })
    },
    'v1 GET cache': s => {
      const e = pick(s)
      const key = s % 2 ? e.key : `${e.key}-nope`
      const q = new URLSearchParams({keys: `${key},${e.prefix}`, version: e.version})
      return get(agent, `${base}/_apis/artifactcache/cache?${q}`, {headers: auth})
    }
  }
  const out = {}
  for (const [name, call] of Object.entries(routes)) {
    for (let s = 0; s < 200; s++) await call(s) // warm up
    for (const concurrency of [1, 8]) {
      const times = []
      let next = 0
      let misses = 0
      const worker = async () => {
        while (next < LOOKUPS) {
          const s = next++
          const t = performance.now()
          const res = await call(s)
          times.push(performance.now() - t)
          if (res.status !== 200) misses++
        }
      }
      await Promise.all(Array.from({length: concurrency}, worker))
      times.sort((a, b) => a - b)
      if (misses) throw new Error(`${name}: ${misses} of ${LOOKUPS} lookups missed`)
      out[`${name}, ${concurrency} at once`] = {p50: pct(times, 0.5), p99: pct(times, 0.99)}
    }
  }
  agent.destroy()
  return out
}

// --- rss: peak memory while many clients upload at once -----------------------------------
function hwm(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN)
  return kb / 1024
}
async function rssRun(server, tok) {
  const file = path.join(work, 'upload.bin')
  writeRandom(file, UPLOAD_MIB)
  const size = fs.statSync(file).size
  const version = 'f'.repeat(64)
  const keys = Array.from({length: UPLOADS}, (_, i) => `bench-rss-${i}-${randomBytes(4).toString('hex')}`)
  const urls = []
  for (const key of keys) urls.push((await twirp(server.base, tok, 'CreateCacheEntry', {key, version})).signed_upload_url)
  const before = hwm(server.child.pid)
  const t = now()
  await Promise.all(
    urls.map((url, i) =>
      uploadCacheArchiveSDK(url, file, {uploadChunkSize: 64 * MIB, uploadConcurrency: 8, archiveSizeBytes: size}).then(() =>
        twirp(server.base, tok, 'FinalizeCacheEntryUpload', {key: keys[i], version, size_bytes: String(size)})
      )
    )
  )
  const elapsed = now() - t
  fs.rmSync(file)
  return {before, peak: hwm(server.child.pid), elapsed, bytes: size * UPLOADS}
}

// --- run -----------------------------------------------------------------------------------
let server = await startServer()
const tok = token(['--repo', 'bench/serve', '--ref', 'refs/heads/main'])
try {
  print(`runner serve at ${server.base}; store ${store}; ${SIZE_MIB} MiB random file, medians of ${RUNS}`)
  if (PHASES.includes('client')) {
    const r = await clientRuns('runner', server.base, tok)
    results.client = r
    print(`client  runner serve      save ${secs(r.save)}  restore ${secs(r.restore)}`)
    if (COMPARE_URL) {
      const c = await clientRuns('compare', COMPARE_URL, COMPARE_TOKEN || tok)
      results.compare = c
      print(`client  ${COMPARE_URL}  save ${secs(c.save)}  restore ${secs(c.restore)}`)
      print(`client  ratio runner/compare  save ${(r.save / c.save).toFixed(2)}x (target <= 0.8)  restore ${(r.restore / c.restore).toFixed(2)}x (target <= 0.4)`)
    }
    if (SINK_URL) {
      const emptyBodies = () => {
        for (const f of fs.readdirSync(SINK_BODIES)) fs.rmSync(path.join(SINK_BODIES, f), {force: true})
      }
      const {save: s} = await clientRuns('sink', SINK_URL, tok, {restore: false, afterSave: SINK_BODIES ? emptyBodies : undefined})
      const vs = results.compare ? `; ${(s / results.compare.save).toFixed(2)}x of compare's` : ''
      print(`client  ${SINK_URL} (stores bodies only: no hash, no fsync, no index)  save ${secs(s)}  runner serve ${(r.save / s).toFixed(2)}x of it${vs}`)
    }
  }
  if (PHASES.includes('http')) {
    const h = await httpRuns(server.base, tok)
    results.http = h
    print(`http    upload   ${secs(h.up)}  ${rate(h.size, h.up)} (target >= 400 MB/s)  ${h.size} B archive`)
    print(`http    upload + finalize ${secs(h.upfin)}  ${rate(h.size, h.upfin)} (the server's digest, assembly and fsync included)`)
    print(`http    download ${secs(h.down)}  ${rate(h.size, h.down)} (target >= 1000 MB/s)  Content-Length: ${h.contentLength ?? 'absent'}`)
    print(`http    download ${secs(h.raw)}  ${rate(h.size, h.raw)} with the bytes discarded instead of written to a file`)
    if (h.static) {
      print(`http    download ${secs(h.static.s)}  ${rate(h.static.bytes, h.static.s)} of ${h.static.bytes} B from ${STATIC_URL} (a static file server)`)
    }
    print(`floor   tar+zstd ${secs(h.tar)}  unzstd+untar ${secs(h.untar)}`)
    if (results.client) {
      const c = results.client
      print(`floor   share of the client's time: save ${((h.tar / c.save) * 100).toFixed(0)}%  restore ${((h.untar / c.restore) * 100).toFixed(0)}%`)
    }
  }
  if (PHASES.includes('lookup') && ENTRIES > 0) {
    await stopServer(server)
    const seeded = spawnSync(seeder, [String(ENTRIES)], {env: {...process.env, RUNNER_CACHE_DIR: store}, encoding: 'utf8'})
    if (seeded.status !== 0) throw new Error(`serve_seed failed: ${seeded.stderr}`)
    print(`lookup  ${seeded.stdout.trim()}`)
    server = await startServer()
    const l = await lookupRuns(server.base)
    results.lookup = l
    for (const [name, r] of Object.entries(l)) {
      print(`lookup  ${name.padEnd(40)} p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms (target < 5 ms)  n=${LOOKUPS}`)
    }
  }
  if (PHASES.includes('rss') && UPLOADS > 0) {
    await stopServer(server)
    server = await startServer()
    const r = await rssRun(server, tok)
    results.rss = r
    print(`rss     ${UPLOADS} x ${UPLOAD_MIB} MiB uploads at once in ${secs(r.elapsed)} (${rate(r.bytes, r.elapsed)}): server VmHWM ${r.peak.toFixed(0)} MiB (idle ${r.before.toFixed(0)} MiB; target < 256 MiB)`)
  }
} catch (err) {
  print(`FAILED: ${err.stack}\n--- server log (tail) ---\n${server.log()}`)
  process.exitCode = 1
} finally {
  await stopServer(server)
  fs.rmSync(work, {recursive: true, force: true})
}
