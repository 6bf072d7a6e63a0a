// Reads serverless.yml, the one place where the stack is defined, for the local stack and the
// tests: the lease table and the HTTP routes are taken from it, never written down twice.
// The file uses serverless `${...}` variables (kept as plain strings here) and long-form
// CloudFormation intrinsics only, so a plain YAML parser reads it.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const defaultServerlessYmlPath = fileURLToPath(new URL('../../serverless.yml', import.meta.url));

const cache = new Map<string, unknown>();

/** The parsed serverless.yml (cached per path; the file does not change while a process runs). */
export function readServerlessYml(path: string = defaultServerlessYmlPath): unknown {
  const cached = cache.get(path);
  if (cached !== undefined) return cached;
  const document = parseDocument(readFileSync(path, 'utf8'));
  if (document.errors.length > 0) {
    throw new Error(`${path}: ${document.errors.map((error) => error.message).join('; ')}`);
  }
  const warnings = document.warnings.filter((warning) => warning.code === 'TAG_RESOLVE_FAILED');
  if (warnings.length > 0) {
    // A short-form intrinsic such as `!Ref` would silently turn into a plain string.
    throw new Error(`${path}: unsupported YAML tags (use long-form intrinsics): ${warnings[0]?.message}`);
  }
  const parsed: unknown = document.toJS();
  cache.set(path, parsed);
  return parsed;
}
