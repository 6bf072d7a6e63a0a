#!/usr/bin/env node
// The `annex` executable (dist/annex.js): run the command line, exit with its code.
import { processIo } from './io.ts';
import { run } from './main.ts';

process.exitCode = await run(process.argv.slice(2), processIo());
