// A pass-through HTTP proxy in front of moto server that closes two gaps between moto and AWS
// which concurrent tests run into (TOOLCHAIN.md lists moto's gaps):
//
// - RunInstances ClientToken: moto stores the token but launches again. On AWS a repeated token
//   returns the first reservation, or IdempotentParameterMismatch when the other parameters differ.
//   Here the first RunInstances with a token is forwarded; another one with that token, even while
//   the first is still in flight, gets the first one's answer if its request is the same, and that
//   error if not. A failed launch registers nothing, as on AWS. `runInstances` records them all.
// - Thread safety: moto's threaded server runs requests concurrently over shared dicts (SSM
//   DescribeParameters iterates its parameters while another request deletes one, and answers
//   HTTP 500). With `oneRequestAtATime`, requests reach moto one at a time (AWS is thread-safe; the
//   races under test are between the callers' calls, which still interleave freely).
// - CreateFleet with InstanceRequirements overrides (attribute-based type selection): moto has no
//   instance type catalogue and answers HTTP 500. With `fleetRequirementsType`, each such override
//   is given that instance type, as EC2 would pick one that meets the requirements.
// - Provenance: moto gives the instance profile of a RunInstances to the first instance of the
//   reservation only; with `awsProvenance` the shim associates it with the others too. And on
//   AWS every instance an EC2 Fleet launches carries the
//   `aws:ec2:fleet-id` tag and the launch template's instance profile, and DescribeFleets returns
//   the fleet's ClientToken; moto does none of that. With `awsProvenance`, the shim tags each
//   instance of a CreateFleet answer and associates the template's profile (through moto's own
//   CreateTags and AssociateIamInstanceProfile, before it answers), and adds the ClientToken the
//   fleet was created with to DescribeFleets answers.
//
// Everything else of every service passes through untouched.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export interface RunInstancesSeen {
  clientToken: string | undefined;
  /** Answered from an earlier launch with that token instead of reaching moto. */
  replayed: boolean;
  /** The earlier launch with that token asked for something else (IdempotentParameterMismatch). */
  mismatch: boolean;
}

export interface MotoShim {
  endpoint: string;
  /** Every RunInstances that reached the shim, in arrival order. */
  runInstances: RunInstancesSeen[];
  stop(): Promise<void>;
}

export interface MotoShimOptions {
  oneRequestAtATime?: boolean;
  /** The instance type EC2 "picks" for a CreateFleet override that gives InstanceRequirements. */
  fleetRequirementsType?: string;
  /** Give fleet instances and fleets what AWS reports of their provenance (see above). */
  awsProvenance?: boolean;
}

/** A CreateFleet form with `type` set on each override that gives InstanceRequirements only. */
const withRequirementsType = (form: URLSearchParams, type: string): Buffer => {
  const overrides = new Set<string>();
  for (const key of form.keys()) {
    const override = /^(LaunchTemplateConfigs\.\d+\.Overrides\.\d+)\.InstanceRequirements\./.exec(key)?.[1];
    if (override !== undefined) overrides.add(override);
  }
  for (const override of overrides) {
    if (!form.has(`${override}.InstanceType`)) form.set(`${override}.InstanceType`, type);
  }
  return Buffer.from(form.toString());
};

const HOP_BY_HOP = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive']);

const idempotentParameterMismatch = (clientToken: string): Reply => ({
  status: 400,
  headers: { 'content-type': 'text/xml' },
  body: Buffer.from(
    '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>IdempotentParameterMismatch</Code>' +
      `<Message>Client token ${clientToken} was used before with different parameters</Message>` +
      '</Error></Errors><RequestID>moto-shim</RequestID></Response>',
  ),
});

const readBody = async (req: IncomingMessage): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
};

export async function startMotoShim(target: string, options: MotoShimOptions = {}): Promise<MotoShim> {
  const launches = new Map<string, { request: string; reply: Promise<Reply> }>();
  const runInstances: RunInstancesSeen[] = [];
  let queue: Promise<unknown> = Promise.resolve();
  /** awsProvenance: each launch template's instance profile, and each fleet's client token. */
  const templateProfiles = new Map<string, string>();
  const fleetTokens = new Map<string, string>();

  const send = async (req: IncomingMessage, body: Buffer): Promise<Reply> => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(k) && v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    const response = await fetch(`${target}${req.url ?? '/'}`, {
      method: req.method ?? 'GET',
      headers,
      ...(body.length > 0 ? { body } : {}),
    });
    const replyHeaders: Record<string, string> = {};
    response.headers.forEach((value, key) => {
      if (!HOP_BY_HOP.has(key) && key !== 'content-encoding') replyHeaders[key] = value;
    });
    return {
      status: response.status,
      headers: replyHeaders,
      body: Buffer.from(await response.arrayBuffer()),
    };
  };

  const forward = (req: IncomingMessage, body: Buffer): Promise<Reply> => {
    if (options.oneRequestAtATime !== true) return send(req, body);
    const reply = queue.then(() => send(req, body));
    queue = reply.catch(() => undefined);
    return reply;
  };

  const server = createServer((req, res) => {
    void (async () => {
      const received = await readBody(req);
      const form = /x-www-form-urlencoded/.test(req.headers['content-type'] ?? '')
        ? new URLSearchParams(received.toString('utf8'))
        : undefined;
      const body =
        form?.get('Action') === 'CreateFleet' && options.fleetRequirementsType !== undefined
          ? withRequirementsType(form, options.fleetRequirementsType)
          : received;
      let reply: Promise<Reply>;
      if (form?.get('Action') === 'RunInstances') {
        const clientToken = form.get('ClientToken') ?? undefined;
        const earlier = clientToken === undefined ? undefined : launches.get(clientToken);
        const request = body.toString('utf8');
        const mismatch = earlier !== undefined && earlier.request !== request;
        runInstances.push({ clientToken, replayed: earlier !== undefined && !mismatch, mismatch });
        if (mismatch) {
          reply = Promise.resolve(idempotentParameterMismatch(clientToken ?? ''));
        } else {
          const profile = form.get('IamInstanceProfile.Arn');
          reply =
            earlier?.reply ??
            (options.awsProvenance === true && profile !== null
              ? forward(req, body).then(async (r) => {
                  if (r.status >= 300) return r;
                  const ids = [
                    ...r.body.toString('utf8').matchAll(/<instanceId>(i-[0-9a-f]+)<\/instanceId>/g),
                  ];
                  for (const [, id] of ids.slice(1)) {
                    await forward(
                      req,
                      Buffer.from(
                        new URLSearchParams({
                          Action: 'AssociateIamInstanceProfile',
                          Version: '2016-11-15',
                          InstanceId: id ?? '',
                          'IamInstanceProfile.Arn': profile,
                        }).toString(),
                      ),
                    );
                  }
                  return r;
                })
              : forward(req, body));
        }
        if (clientToken !== undefined && earlier === undefined) {
          launches.set(clientToken, { request, reply });
          reply.then(
            (r) => {
              if (r.status >= 300) launches.delete(clientToken);
            },
            () => launches.delete(clientToken),
          );
        }
      } else if (options.awsProvenance === true && form?.get('Action') === 'CreateLaunchTemplate') {
        const profile = form.get('LaunchTemplateData.IamInstanceProfile.Arn');
        const name = form.get('LaunchTemplateName');
        if (profile !== null && name !== null) templateProfiles.set(name, profile);
        reply = forward(req, body);
      } else if (options.awsProvenance === true && form?.get('Action') === 'CreateFleet') {
        reply = forward(req, body).then(async (r) => {
          if (r.status >= 300) return r;
          const text = r.body.toString('utf8');
          const fleetId = /<fleetId>([^<]+)<\/fleetId>/.exec(text)?.[1];
          if (fleetId === undefined) return r;
          const token = form.get('ClientToken');
          if (token !== null) fleetTokens.set(fleetId, token);
          const instanceIds = [...text.matchAll(/<item>(i-[0-9a-f]+)<\/item>/g)].map((m) => m[1] ?? '');
          const template = form.get('LaunchTemplateConfigs.1.LaunchTemplateSpecification.LaunchTemplateName');
          const profile = template === null ? undefined : templateProfiles.get(template);
          const call = (params: Record<string, string>) =>
            forward(req, Buffer.from(new URLSearchParams({ Version: '2016-11-15', ...params }).toString()));
          if (instanceIds.length > 0) {
            await call({
              Action: 'CreateTags',
              ...Object.fromEntries(instanceIds.map((id, n) => [`ResourceId.${n + 1}`, id])),
              'Tag.1.Key': 'aws:ec2:fleet-id',
              'Tag.1.Value': fleetId,
            });
          }
          if (profile !== undefined) {
            for (const id of instanceIds) {
              await call({
                Action: 'AssociateIamInstanceProfile',
                InstanceId: id,
                'IamInstanceProfile.Arn': profile,
              });
            }
          }
          return r;
        });
      } else if (options.awsProvenance === true && form?.get('Action') === 'DescribeFleets') {
        reply = forward(req, body).then((r) => ({
          ...r,
          body: Buffer.from(
            r.body.toString('utf8').replace(/<fleetId>([^<]+)<\/fleetId>/g, (whole, id: string) => {
              const token = fleetTokens.get(id);
              return token === undefined ? whole : `${whole}<clientToken>${token}</clientToken>`;
            }),
          ),
        }));
      } else {
        reply = forward(req, body);
      }
      const { status, headers, body: out } = await reply;
      res.writeHead(status, { ...headers, 'content-length': String(out.length) });
      res.end(out);
    })().catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`moto shim: ${String(e)}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    runInstances,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((e) => (e ? reject(e) : resolve()));
      }),
  };
}
