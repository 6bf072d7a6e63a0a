// Global setup of the projects that read the packaged stack: packages it if it is stale.
import { ensurePackaged } from './package.ts';

export default function setup(): void {
  ensurePackaged((line) => console.error(`[package] ${line}`));
}
