// Helpers shared by the compatibility test (tests/compat/compat.mjs) and the server benchmark
// (bench/serve/bench.mjs): a free loopback port and tokens from `runner token`.

import {spawnSync} from 'node:child_process'
import net from 'node:net'

/** A TCP port nothing listens on at the moment, on 127.0.0.1. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.listen(0, '127.0.0.1', () => {
      const {port} = srv.address()
      srv.close(() => resolve(port))
    })
    srv.on('error', reject)
  })
}

/** A runtime token from `runner token args...`, signed with `secret`. */
export function mintToken(runner, secret, args) {
  const out = spawnSync(runner, ['token', ...args], {
    env: {...process.env, RUNNER_SERVE_TOKEN_SECRET: secret},
    encoding: 'utf8'
  })
  if (out.status !== 0) throw new Error(`runner token failed: ${out.stderr}`)
  return out.stdout.trim()
}
