/**
 * Structured JSON logs, one line per entry. Fields whose names suggest a secret are replaced, so a
 * credential can never reach a log by accident.
 */
import type { Logger } from './domain/ports.ts';

const SECRET_KEY = /secret|password|credential(?!Parameter)|token|userdata|authorization|value$/i;

const redact = (value: unknown, depth = 0): unknown => {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Date) return value.toISOString();
  // Too deep to inspect (or a cycle): dropping it is the only way to be sure no secret is inside.
  if (depth > 4) return '[truncated]';
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([k, v]) => [
      k,
      SECRET_KEY.test(k) ? '[redacted]' : redact(v, depth + 1),
    ]),
  );
};

export interface StructuredLogger extends Logger {
  child(fields: Record<string, unknown>): StructuredLogger;
}

export const createLogger = (
  base: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): StructuredLogger => {
  const emit = (level: string, message: string, fields?: Record<string, unknown>) =>
    write(
      // The entry's own level, time and message come last: a field cannot overwrite them.
      JSON.stringify({
        ...(redact({ ...base, ...fields }) as Record<string, unknown>),
        level,
        time: new Date().toISOString(),
        message,
      }),
    );
  return {
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ ...base, ...fields }, write),
  };
};

export const logger = createLogger({ service: 'annex' });
