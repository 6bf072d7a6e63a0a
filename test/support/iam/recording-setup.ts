// Global setup of the integration project: drops the recordings of earlier runs (this run's
// recording is written by the test processes, see record-setup.ts).
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { currentRun, recordingRoot } from './recording.ts';

export default function setup(): void {
  if (!existsSync(recordingRoot)) return;
  for (const run of readdirSync(recordingRoot)) {
    if (run !== currentRun()) rmSync(join(recordingRoot, run), { recursive: true, force: true });
  }
}
