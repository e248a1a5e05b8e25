/**
 * Prebuild the workflow bundle (production images run this at build time), so
 * a worker starts without bundling and every worker of a release runs the
 * identical workflow code. Usage: tsx scripts/bundle-workflows.ts [out]
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { workflowsPath } from '../worker/worker.js';

const out = resolve(process.argv[2] ?? 'dist/workflow-bundle.js');
const { code } = await bundleWorkflowCode({ workflowsPath });
await mkdir(dirname(out), { recursive: true });
await writeFile(out, code);
console.log(`workflow bundle written to ${out} (${(code.length / 1024).toFixed(0)} KiB)`);
