/** What a command runs with: its arguments, the output, and (lazily) a signed API client. */
import type { Interface } from 'node:readline';
import type { CommandSpec, Options } from './args.ts';
import { CliError, usageError } from './errors.ts';
import type { CredentialSource } from './aws.ts';
import type { ApiClient } from './http.ts';
import type { Io } from './io.ts';
import { Output } from './output.ts';
import {
  configFilePath,
  readConfigFile,
  resolveEndpoint,
  resolveProfile,
  resolveRegion,
  type ConfigFile,
  type Resolved,
} from './settings.ts';

export interface Connection {
  client: ApiClient;
  credentials: CredentialSource;
  endpoint: Resolved<URL>;
  region: Resolved<string>;
  profile?: Resolved<string>;
}

export class Context {
  readonly io: Io;
  readonly command: CommandSpec;
  readonly positionals: string[];
  readonly options: Options;
  readonly out: Output;
  readonly configPath: string;
  private configCache?: ConfigFile;
  private connection?: Promise<Connection>;
  private prompts?: { rl: Interface; lines: AsyncIterator<string> };

  constructor(io: Io, command: CommandSpec, positionals: string[], options: Options) {
    this.io = io;
    this.command = command;
    this.positionals = positionals;
    this.options = options;
    this.out = new Output(io, {
      json: options.json === true,
      quiet: options.quiet === true,
      noColor: options['no-color'] === true,
    });
    this.configPath = configFilePath(io.env);
  }

  get config(): ConfigFile {
    this.configCache ??= readConfigFile(this.configPath);
    return this.configCache;
  }

  now(): Date {
    return this.io.now();
  }

  /** A string option, or undefined. */
  string(name: string): string | undefined {
    const v = this.options[name];
    return typeof v === 'string' ? v : undefined;
  }

  /** A repeatable string option (always an array). */
  list(name: string): string[] {
    const v = this.options[name];
    return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  }

  flag(name: string): boolean {
    return this.options[name] === true;
  }

  /** The annex (or pool) name argument. */
  get name(): string {
    const name = this.positionals[0];
    if (name === undefined) throw usageError(`annex ${this.command.name} needs a name`);
    return name;
  }

  /** `?owner=` for administrators acting on someone else's annex. */
  get ownerQuery(): Record<string, string | undefined> {
    return { owner: this.string('owner-arn') };
  }

  /** The pool to use: --pool, else the config file's, else `default`. */
  get pool(): string {
    return this.string('pool') ?? this.config.pool ?? 'default';
  }

  /** Writes a question on stderr and reads one line of stdin ('' at end of input). */
  async ask(question: string): Promise<string> {
    this.out.raw(question);
    if (this.prompts === undefined) {
      const { createInterface } = await import('node:readline');
      const rl = createInterface({ input: this.io.stdin, terminal: false, crlfDelay: Infinity });
      this.prompts = { rl, lines: rl[Symbol.asyncIterator]() };
    }
    const next = await this.prompts.lines.next();
    return next.done === true ? '' : String(next.value);
  }

  /** Releases stdin after prompts, so the process can exit. */
  close(): void {
    this.prompts?.rl.close();
  }

  /** Endpoint, region and credentials, resolved once; loads the AWS modules on first use. */
  connect(): Promise<Connection> {
    this.connection ??= this.buildConnection();
    return this.connection;
  }

  async api(): Promise<ApiClient> {
    return (await this.connect()).client;
  }

  private async buildConnection(): Promise<Connection> {
    const flags = {
      ...(this.string('endpoint') === undefined ? {} : { endpoint: this.string('endpoint') }),
      ...(this.string('region') === undefined ? {} : { region: this.string('region') }),
      ...(this.string('profile') === undefined ? {} : { profile: this.string('profile') }),
    };
    const endpoint = resolveEndpoint(flags, this.io.env, this.config, this.configPath);
    const profile = resolveProfile(flags, this.io.env, this.config);
    const [aws, { ApiClient }] = await Promise.all([import('./aws.ts'), import('./http.ts')]);
    const region = await resolveRegion(
      flags,
      this.io.env,
      endpoint,
      this.config,
      this.configPath,
      profile?.value,
      aws.profileRegion,
    );
    const accessKeyFile = this.string('access-key-file');
    const secretKeyFile = this.string('secret-key-file');
    if ((accessKeyFile === undefined) !== (secretKeyFile === undefined)) {
      throw usageError('--access-key-file and --secret-key-file go together');
    }
    const credentials =
      accessKeyFile !== undefined && secretKeyFile !== undefined
        ? aws.credentialsFromFiles(accessKeyFile, secretKeyFile)
        : aws.defaultCredentials(profile?.value);
    const debug = this.flag('debug')
      ? (line: string) => void this.io.stderr.write(`annex: debug: ${line}\n`)
      : undefined;
    const client = new ApiClient({
      endpoint: endpoint.value,
      region: region.value,
      credentials,
      ...(debug === undefined ? {} : { debug }),
    });
    return { client, credentials, endpoint, region, ...(profile === undefined ? {} : { profile }) };
  }
}

/** Re-throws an API error with a hint that fits the command (the server's code and message kept). */
export const withHint = (e: unknown, hint: (error: CliError) => string | undefined): never => {
  if (!(e instanceof CliError)) throw e;
  const better = hint(e);
  if (better === undefined) throw e;
  throw new CliError(e.message, {
    exitCode: e.exitCode,
    code: e.code,
    hint: better,
    ...(e.status === undefined ? {} : { status: e.status }),
    ...(e.requestId === undefined ? {} : { requestId: e.requestId }),
    ...(e.field === undefined ? {} : { field: e.field }),
  });
};
