// The runner's hashFiles algorithm, in Node with @actions/glob, for comparison with
// `runner hash-files`: glob the newline-joined patterns (links not followed unless
// followSymbolicLinks=true), skip paths outside the working directory and directories,
// sha256 each file as a stream, and sha256 the concatenated raw digests in glob order.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as stream from 'stream/promises';
import * as glob from '@actions/glob';

const patterns = process.env.patterns || '';
const followSymbolicLinks = process.env.followSymbolicLinks === 'true';
const workspace = process.cwd();
const total = crypto.createHash('sha256');
let count = 0;
const globber = await glob.create(patterns, {followSymbolicLinks});
for await (const file of globber.globGenerator()) {
  if (!file.startsWith(`${workspace}${path.sep}`)) continue;
  if (fs.statSync(file).isDirectory()) continue;
  const hash = crypto.createHash('sha256');
  await stream.pipeline(fs.createReadStream(file), hash);
  total.write(hash.digest());
  count++;
}
total.end();
console.error(`files=${count}`);
// @actions/core prints debug lines on stdout: the hash is the last line.
console.log(count > 0 ? total.digest('hex') : '');
