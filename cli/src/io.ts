/** The outside world of one run: streams, environment and clock, passed in so tests can fake them. */
import type { Env } from './settings.ts';

export interface OutStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export type InStream = NodeJS.ReadableStream & { isTTY?: boolean };

export interface Io {
  stdout: OutStream;
  stderr: OutStream;
  stdin: InStream;
  env: Env;
  now(): Date;
}

export const processIo = (): Io => ({
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  now: () => new Date(),
});
