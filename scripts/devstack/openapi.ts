// Builds docs/openapi.yaml (OpenAPI 3.1) from the API contract (shared/http/contract.ts): request
// schemas as JSON Schema of their input, answers as JSON Schema of their output, both from zod.
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { format, resolveConfig } from 'prettier';
import { stringify } from 'yaml';
import * as z from 'zod/mini';
import {
  ERROR_NAMES,
  ERRORS,
  OPERATIONS,
  REQUEST_COMPONENTS,
  RESPONSE_COMPONENTS,
  SHARED_COMPONENTS,
  type ErrorStatus,
  type Operation,
} from '../../shared/http/contract.ts';
import { repoRoot } from './serverless-config.ts';

type Json = Record<string, unknown>;

const ref = (name: string) => `#/components/schemas/${name}`;

const INFO_DESCRIPTION = `Burst an HTCondor pool into AWS EC2 for a fixed lease. Every route but Slack's two is an
API Gateway HTTP API route with AWS_IAM authorization: requests are SigV4-signed (service
\`execute-api\`), and the caller's IAM principal ARN is the owner of what it creates. Administrators
(configured by ARN) may act on any annex by adding \`?owner=<principal ARN>\`.

Errors are \`{ "error": { "code", "message", "field"? } }\`: 400 ValidationError (with the field),
403 Forbidden, 404 NotFound, 409 Conflict, 422 LimitExceeded, 503 UpstreamUnavailable, 500
Internal (never with internals; carries a requestId). API Gateway answers some requests itself,
before any function runs, with \`{ "message" }\` only: 403 \`Forbidden\` (no or a wrong SigV4
signature) and 404 \`Not Found\` (no route matches).

Generated from the zod schemas by \`npm run openapi\` (scripts/openapi.ts); do not edit by hand.
`;

/** The JSON Schemas of a set of named zod schemas, `$ref`s between them pointing into components. */
const componentSchemas = (named: Record<string, z.ZodMiniType>, io: 'input' | 'output') => {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(named)) registry.add(schema, { id });
  const { schemas } = z.toJSONSchema(registry, { io, uri: ref });
  return Object.fromEntries(
    Object.entries(schemas).map(([id, { $schema: _schema, $id: _id, ...schema }]) => [id, schema as Json]),
  );
};

const merge = (into: Record<string, Json>, more: Record<string, Json>) => {
  for (const [id, schema] of Object.entries(more)) {
    const known = into[id];
    if (known !== undefined && !isDeepStrictEqual(known, schema)) {
      throw new Error(`component ${id} differs between requests and answers`);
    }
    into[id] = schema;
  }
};

/** A schema used by an operation: a `$ref` when it is a named component, else inline. */
const schemaOf = (schema: z.ZodMiniType, names: Map<z.ZodMiniType, string>, io: 'input' | 'output'): Json => {
  const name = names.get(schema);
  if (name !== undefined) return { $ref: ref(name) };
  const { $schema: _schema, ...inline } = z.toJSONSchema(schema, { io }) as Json;
  return inline;
};

const parameters = (op: Operation): Json[] => {
  const fields = (object: z.ZodMiniObject | undefined, where: 'path' | 'query') =>
    Object.entries(object?.def.shape ?? {}).map(([name, field]) => {
      const { description, ...schema } = schemaOf(field as z.ZodMiniType, new Map(), 'input');
      return {
        name,
        in: where,
        required: where === 'path' || (field as z.ZodMiniType)._zod.optin !== 'optional',
        ...(description === undefined ? {} : { description }),
        schema,
      };
    });
  return [
    ...fields(op.pathParameters, 'path'),
    ...fields(op.query, 'query'),
    ...(op.headers ?? []).map((h) => ({
      name: h.name,
      in: 'header',
      required: h.required,
      ...(h.description === undefined ? {} : { description: h.description }),
      schema: schemaOf(h.schema, new Map(), 'input'),
    })),
  ];
};

const operation = (op: Operation, names: Map<z.ZodMiniType, string>): Json => ({
  operationId: op.operationId,
  summary: op.summary,
  ...(op.description === undefined ? {} : { description: op.description }),
  ...(op.auth === 'slack' ? { security: [] } : {}),
  ...(parameters(op).length === 0 ? {} : { parameters: parameters(op) }),
  ...(op.body === undefined
    ? {}
    : {
        requestBody: {
          required: true,
          content: { [op.body.contentType]: { schema: schemaOf(op.body.schema, names, 'input') } },
        },
      }),
  responses: {
    [String(op.ok.status)]: {
      description: op.ok.description,
      ...(op.ok.schema === undefined
        ? {}
        : { content: { 'application/json': { schema: schemaOf(op.ok.schema, names, 'output') } } }),
    },
    ...Object.fromEntries(
      op.errors.map((status) => [String(status), { $ref: `#/components/responses/${ERROR_NAMES[status]}` }]),
    ),
  },
});

/** The OpenAPI 3.1 document of the API, as an object. */
export const openApiDocument = (): Json => {
  const errorSchemas = Object.fromEntries(
    (Object.keys(ERRORS).map(Number) as ErrorStatus[]).map((s) => [ERROR_NAMES[s], ERRORS[s].schema]),
  );
  const schemas: Record<string, Json> = {};
  merge(schemas, componentSchemas({ ...REQUEST_COMPONENTS, ...SHARED_COMPONENTS }, 'input'));
  merge(
    schemas,
    componentSchemas({ ...RESPONSE_COMPONENTS, ...SHARED_COMPONENTS, ...errorSchemas }, 'output'),
  );
  const names = new Map<z.ZodMiniType, string>(
    Object.entries({ ...REQUEST_COMPONENTS, ...RESPONSE_COMPONENTS }).map(([name, schema]) => [schema, name]),
  );
  const paths: Record<string, Record<string, Json>> = {};
  for (const op of OPERATIONS) paths[op.path] = { ...paths[op.path], [op.method]: operation(op, names) };
  return {
    openapi: '3.1.0',
    info: { title: 'Annex control plane', version: '0.1.0', description: INFO_DESCRIPTION },
    servers: [{ url: 'http://127.0.0.1:8787', description: 'the local stack (`npm run dev`)' }],
    security: [{ sigv4: [] }],
    paths,
    components: {
      securitySchemes: {
        sigv4: {
          type: 'apiKey',
          name: 'Authorization',
          in: 'header',
          description: 'AWS Signature Version 4 (service execute-api)',
          'x-amazon-apigateway-authtype': 'awsSigv4',
        },
      },
      responses: Object.fromEntries(
        (Object.keys(ERRORS).map(Number) as ErrorStatus[]).map((status) => [
          ERROR_NAMES[status],
          {
            description: ERRORS[status].description,
            ...(status === 503 ? { headers: { 'Retry-After': { schema: { type: 'string' } } } } : {}),
            content: { 'application/json': { schema: { $ref: ref(ERROR_NAMES[status]) } } },
          },
        ]),
      ),
      schemas,
    },
  };
};

export const OPENAPI_PATH = join(repoRoot, 'docs', 'openapi.yaml');

/** docs/openapi.yaml as `npm run openapi` writes it (formatted by prettier with the project's settings). */
export const openApiYaml = async (): Promise<string> => {
  const header = '# Generated by `npm run openapi` from shared/http/contract.ts: do not edit by hand.\n';
  const options = (await resolveConfig(OPENAPI_PATH)) ?? {};
  return format(header + stringify(openApiDocument(), { lineWidth: 0 }), {
    ...options,
    filepath: OPENAPI_PATH,
  });
};
