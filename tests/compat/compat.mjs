// The real @actions/cache client (pinned in package-lock.json) against `runner serve`, over the
// v1 REST protocol and the v2 Twirp + Azure-blob protocol, and Octokit (@octokit/rest, pinned)
// against its GitHub-compatible REST caches API. Run by .ci/run:
//   npm ci --prefix tests/compat && node tests/compat/compat.mjs path/to/runner
// Prints one line per scenario and "N passed, N failed"; exits 1 on any failure.
// COMPAT_NODES=N (with RUNNER_CACHE_DB=postgres://… and RUNNER_CACHE_BLOBS=s3://… in the
// environment) runs N `runner serve` nodes on that one index and bucket behind a round-robin
// proxy, so each request of a save or restore may reach a different node (.ci/run does 3).

import {spawn, spawnSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import {freePort, mintToken} from './harness.mjs'

const runner = path.resolve(process.argv[2] || 'target/debug/runner')
const secret = 'compat-secret-' + randomBytes(8).toString('hex')
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'runner-compat-'))
const store = path.join(root, 'store')

// The toolkit writes its annotations (`::warning::...`) and info lines to stdout; keep them to
// assert on, and show them only for a scenario that fails.
let captured = []
const write = process.stdout.write.bind(process.stdout)
process.stdout.write = (chunk, ...rest) => {
  captured.push(String(chunk))
  const callback = rest.find(r => typeof r === 'function')
  if (callback) callback()
  return true
}
// The toolkit stages archives under RUNNER_TEMP (else a fixed /home/actions/temp).
process.env.RUNNER_TEMP = path.join(root, 'tmp')
fs.mkdirSync(process.env.RUNNER_TEMP, {recursive: true})


const token = args => mintToken(runner, secret, args)

async function waitHealthy(base) {
  for (let i = 0; i < 100; i++) {
    try {
      const res = await fetch(`${base}/healthz`)
      if (res.ok) return
    } catch {}
    await new Promise(r => setTimeout(r, 100))
  }
  throw new Error('runner serve did not become healthy')
}

function sha(file) {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex')
}

function useProtocol(protocol, base, tok) {
  delete process.env.ACTIONS_CACHE_SERVICE_V2
  delete process.env.ACTIONS_CACHE_URL
  delete process.env.ACTIONS_RESULTS_URL
  process.env.ACTIONS_RUNTIME_TOKEN = tok
  if (protocol === 'v2') {
    process.env.ACTIONS_CACHE_SERVICE_V2 = 'true'
    process.env.ACTIONS_RESULTS_URL = `${base}/`
  } else {
    process.env.ACTIONS_CACHE_URL = `${base}/`
  }
}

const results = []
async function scenario(name, body) {
  captured = []
  try {
    await body()
    results.push([name, true])
    write(`ok   ${name}\n`)
  } catch (err) {
    results.push([name, false])
    write(`FAIL ${name}: ${err && err.stack ? err.stack : err}\n`)
    write(`client log:\n${captured.join('').slice(-4000)}\n`)
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message)
}

const nodeCount = Math.max(1, Number(process.env.COMPAT_NODES || 1))
const port = await freePort()
const base = `http://127.0.0.1:${port}`
// One node listens on `port` itself; several listen on their own ports behind a proxy on `port`
// that hands each request to the next node in turn (signed URLs name the proxy).
const nodePorts = nodeCount === 1 ? [port] : await Promise.all(Array.from({length: nodeCount}, freePort))
const servers = nodePorts.map((p, i) =>
  spawn(runner, ['serve', '--listen', `127.0.0.1:${p}`], {
    env: {
      ...process.env,
      RUNNER_CACHE_DIR: i === 0 ? store : `${store}-${i}`,
      RUNNER_SERVE_TOKEN_SECRET: secret,
      ...(nodeCount > 1 ? {RUNNER_SERVE_PUBLIC_URL: base} : {})
    },
    stdio: ['ignore', 'ignore', 'pipe']
  })
)
const served = nodePorts.map(() => 0)
let proxy
if (nodeCount > 1) {
  let next = 0
  proxy = http.createServer((req, res) => {
    const i = next++ % nodePorts.length
    served[i]++
    const upstream = http.request(
      {host: '127.0.0.1', port: nodePorts[i], method: req.method, path: req.url, headers: req.headers},
      answer => {
        res.writeHead(answer.statusCode, answer.headers)
        answer.pipe(res)
      }
    )
    upstream.on('error', err => {
      res.writeHead(502)
      res.end(String(err))
    })
    req.pipe(upstream)
  })
  await new Promise(r => proxy.listen(port, '127.0.0.1', r))
}
let serverLog = ''
for (const server of servers) server.stderr.on('data', d => (serverLog += d))

try {
  for (const p of nodePorts) await waitHealthy(`http://127.0.0.1:${p}`)
  const cache = await import('@actions/cache')
  const main = token(['--repo', 'octo/app', '--ref', 'refs/heads/main'])
  const feature = token([
    '--repo', 'octo/app', '--ref', 'refs/heads/feature',
    '--default-branch', 'refs/heads/main'
  ])
  const other = token(['--repo', 'octo/other', '--ref', 'refs/heads/main'])
  const readOnly = token(['--repo', 'octo/app', '--ref', 'refs/heads/main', '--read-only'])

  for (const protocol of ['v1', 'v2']) {
    const ws = path.join(root, `ws-${protocol}`)
    fs.mkdirSync(path.join(ws, 'deps/sub'), {recursive: true})
    process.chdir(ws)
    process.env.GITHUB_WORKSPACE = ws
    fs.writeFileSync(path.join(ws, 'deps/a.txt'), `a ${protocol}\n`)
    fs.writeFileSync(path.join(ws, 'deps/sub/b.bin'), randomBytes(100000))
    const before = sha(path.join(ws, 'deps/sub/b.bin'))

    await scenario(`${protocol}: small tree saves and restores exactly`, async () => {
      useProtocol(protocol, base, main)
      const id = await cache.saveCache(['deps'], `small-${protocol}`)
      assert(id > 0, `saveCache returned ${id}`)
      fs.rmSync(path.join(ws, 'deps'), {recursive: true})
      const hit = await cache.restoreCache(['deps'], `small-${protocol}`)
      assert(hit === `small-${protocol}`, `restoreCache returned ${hit}`)
      assert(fs.readFileSync(path.join(ws, 'deps/a.txt'), 'utf8') === `a ${protocol}\n`, 'a.txt differs')
      assert(sha(path.join(ws, 'deps/sub/b.bin')) === before, 'b.bin differs')
    })

    await scenario(`${protocol}: a restore key finds the newest prefix match`, async () => {
      useProtocol(protocol, base, main)
      const hit = await cache.restoreCache(['deps'], `missing-${protocol}`, [`small-`])
      assert(hit === `small-${protocol}`, `restoreCache returned ${hit}`)
    })

    await scenario(`${protocol}: entries are immutable`, async () => {
      useProtocol(protocol, base, main)
      const id = await cache.saveCache(['deps'], `small-${protocol}`)
      assert(id === -1, `second save returned ${id}`)
      const log = captured.join('')
      assert(
        log.includes(`Unable to reserve cache with key small-${protocol}, another job may be creating this cache.`),
        `no reservation message in: ${log}`
      )
    })

    await scenario(`${protocol}: a file over 128 MiB round-trips`, async () => {
      useProtocol(protocol, base, main)
      const big = path.join(ws, 'big')
      fs.mkdirSync(big, {recursive: true})
      const fd = fs.openSync(path.join(big, 'blob'), 'w')
      for (let i = 0; i < 136; i++) fs.writeSync(fd, randomBytes(1024 * 1024))
      fs.closeSync(fd)
      const want = sha(path.join(big, 'blob'))
      const id = await cache.saveCache(['big'], `big-${protocol}`)
      assert(id > 0, `saveCache returned ${id}`)
      fs.rmSync(big, {recursive: true})
      const hit = await cache.restoreCache(['big'], `big-${protocol}`)
      assert(hit === `big-${protocol}`, `restoreCache returned ${hit}`)
      assert(sha(path.join(big, 'blob')) === want, 'big file differs')
      fs.rmSync(big, {recursive: true})
    })

    await scenario(`${protocol}: scopes and repositories are isolated`, async () => {
      // A feature branch reads main's entries and writes only its own ref.
      useProtocol(protocol, base, feature)
      let hit = await cache.restoreCache(['deps'], `small-${protocol}`)
      assert(hit === `small-${protocol}`, `feature did not read main: ${hit}`)
      const id = await cache.saveCache(['deps'], `feature-only-${protocol}`)
      assert(id > 0, `feature save returned ${id}`)
      useProtocol(protocol, base, main)
      hit = await cache.restoreCache(['deps'], `feature-only-${protocol}`)
      assert(hit === undefined, `main read a feature entry: ${hit}`)
      // Another repository sees nothing of this one.
      useProtocol(protocol, base, other)
      hit = await cache.restoreCache(['deps'], `small-${protocol}`)
      assert(hit === undefined, `another repository read it: ${hit}`)
      // A read-only token restores but cannot save.
      useProtocol(protocol, base, readOnly)
      hit = await cache.restoreCache(['deps'], `small-${protocol}`)
      assert(hit === `small-${protocol}`, `read-only token did not restore: ${hit}`)
      const denied = await cache.saveCache(['deps'], `read-only-${protocol}`)
      assert(denied === -1, `read-only token saved: ${denied}`)
    })
  }

  await scenario('v1 and v2 share one store, and runner cache list shows both', async () => {
    useProtocol('v2', base, main)
    process.chdir(path.join(root, 'ws-v2'))
    process.env.GITHUB_WORKSPACE = path.join(root, 'ws-v2')
    // v2 reads what v1 saved (same paths, same version).
    const hit = await cache.restoreCache(['deps'], 'small-v1')
    assert(hit === 'small-v1', `v2 did not find the v1 entry: ${hit}`)
    const out = spawnSync(runner, ['cache', 'list', '-R', 'octo/app', '--json'], {
      env: {...process.env, RUNNER_CACHE_DIR: store},
      encoding: 'utf8'
    })
    assert(out.status === 0, `runner cache list failed: ${out.stderr}`)
    for (const key of ['small-v1', 'small-v2', 'big-v1', 'big-v2', 'feature-only-v1']) {
      assert(out.stdout.includes(`"${key}"`), `${key} missing from runner cache list`)
    }
  })

  // GitHub's REST caches API through Octokit, as people script their cache cleanups today.
  const {Octokit} = await import('@octokit/rest')
  const repo = {owner: 'octo', repo: 'app'}
  const admin = new Octokit({auth: token(['--admin', '--repo', 'octo/app', '--write']), baseUrl: base})
  const reader = new Octokit({auth: token(['--admin', '--repo', 'octo/app']), baseUrl: base})

  await scenario('octokit: getActionsCacheList, paginate and getActionsCacheUsage', async () => {
    const {data} = await reader.rest.actions.getActionsCacheList({...repo, key: 'small-', ref: 'refs/heads/main'})
    const keys = data.actions_caches.map(c => c.key).sort()
    assert(JSON.stringify(keys) === '["small-v1","small-v2"]', `listed ${keys}`)
    assert(data.total_count === 2, `total_count ${data.total_count}`)
    for (const c of data.actions_caches) {
      assert(Number.isSafeInteger(c.id) && c.size_in_bytes > 0, `bad entry ${JSON.stringify(c)}`)
      assert(!Number.isNaN(Date.parse(c.created_at)) && !Number.isNaN(Date.parse(c.last_accessed_at)), `bad times ${JSON.stringify(c)}`)
    }
    // Pages of 2 followed through the Link header.
    const all = await reader.paginate(reader.rest.actions.getActionsCacheList, {...repo, per_page: 2})
    const usage = (await reader.rest.actions.getActionsCacheUsage(repo)).data
    assert(all.length === usage.active_caches_count, `paginate saw ${all.length}, usage says ${usage.active_caches_count}`)
    assert(new Set(all.map(c => c.id)).size === all.length, 'a cache was listed twice')
    const bytes = all.reduce((n, c) => n + c.size_in_bytes, 0)
    assert(bytes === usage.active_caches_size_in_bytes, `sizes ${bytes} != ${usage.active_caches_size_in_bytes}`)
  })

  await scenario('octokit: deleteActionsCacheByKey / ById; a read token cannot delete', async () => {
    let status
    try {
      await reader.rest.actions.deleteActionsCacheByKey({...repo, key: 'small-v1'})
    } catch (err) {
      status = err.status
    }
    assert(status === 403, `read token delete answered ${status}`)
    const {data} = await admin.rest.actions.deleteActionsCacheByKey({...repo, key: 'small-v1'})
    assert(data.total_count === 1 && data.actions_caches[0].key === 'small-v1', `deleted ${JSON.stringify(data)}`)
    const left = await admin.paginate(admin.rest.actions.getActionsCacheList, {...repo, key: 'small-'})
    assert(left.map(c => c.key).join() === 'small-v2', `left ${left.map(c => c.key)}`)
    const gone = await admin.rest.actions.deleteActionsCacheById({...repo, cache_id: left[0].id})
    assert(gone.status === 204, `delete by id answered ${gone.status}`)
    // The toolkit now misses the deleted key.
    useProtocol('v2', base, main)
    const hit = await cache.restoreCache(['deps'], 'small-v2')
    assert(hit === undefined, `restored a deleted entry: ${hit}`)
  })
  if (nodeCount > 1) {
    await scenario(`every one of the ${nodeCount} nodes took part`, async () => {
      assert(served.every(n => n > 0), `requests per node: ${served.join(', ')}`)
    })
  }
} finally {
  proxy?.close()
  for (const server of servers) {
    server.kill('SIGTERM')
    await new Promise(r => server.on('exit', r))
  }
}

const passed = results.filter(([, ok]) => ok).length
const failed = results.length - passed
if (failed > 0) write(`runner serve log:\n${serverLog.slice(-4000)}\n`)
fs.rmSync(root, {recursive: true, force: true})
const where = nodeCount > 1 ? ` (${nodeCount} nodes: ${served.join(' + ')} requests)` : ''
write(`compat: ${passed} passed, ${failed} failed${where}\n`)
process.exit(failed > 0 ? 1 : 0)
