// The default image's EC2 Image Builder pipeline (serverless.yml) and its component document
// (image/builder/component.yml.txt): the document is an Image Builder document whose shell passes
// shellcheck, it installs HTCondor's LTS series from HTCondor's repository and image/install.sh,
// the recipe passes exactly the parameters it declares (none secret), and the AMI it distributes
// is the one the launching functions resolve by default.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { readServerlessYml, repoRoot } from '../../../scripts/devstack/serverless-config.ts';

interface Step {
  name: string;
  action: string;
  inputs: unknown;
}
interface ComponentDocument {
  name: string;
  schemaVersion: number | string;
  parameters?: Record<string, { type: string }>[];
  phases: { name: string; steps: Step[] }[];
}
type Resource = { Type: string; Properties: Record<string, unknown> };

const documentPath = 'image/builder/component.yml.txt';
const documentText = readFileSync(join(repoRoot, documentPath), 'utf8');
const document = parse(documentText) as ComponentDocument;
const config = readServerlessYml() as {
  custom: Record<string, string>;
  functions: Record<string, { role?: string; environment?: Record<string, unknown> }>;
  resources: { Resources: Record<string, Resource> };
};
const resources = config.resources.Resources;
const resource = (name: string): Resource => {
  const r = resources[name];
  if (r === undefined) throw new Error(`serverless.yml has no ${name}`);
  return r;
};

const bashSteps = document.phases.flatMap((p) =>
  p.steps.filter((s) => s.action === 'ExecuteBash').map((s) => ({ phase: p.name, step: s })),
);
const commandsOf = (step: Step): string[] => (step.inputs as { commands: string[] }).commands;
const allShell = bashSteps.flatMap(({ step }) => commandsOf(step)).join('\n');

const shellcheck = (files: Record<string, string>): string => {
  const dir = mkdtempSync(join(tmpdir(), 'annex-component-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const result = spawnSync('shellcheck', ['-s', 'bash', '-S', 'style', ...Object.keys(files)], {
      cwd: dir,
      encoding: 'utf8',
    });
    if (result.error !== undefined)
      throw new Error('shellcheck is not installed: run scripts/ensure-deps.sh (npm test does)');
    return result.stdout + result.stderr;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

describe('the image component document', () => {
  it('parses as an Image Builder document: schema 1.0, phases with named ExecuteBash/S3Download steps', () => {
    expect(documentText).toMatch(/^schemaVersion: 1\.0$/m);
    expect(document.phases.map((p) => p.name)).toEqual(['build', 'validate']);
    for (const phase of document.phases) {
      expect(phase.steps.length).toBeGreaterThan(0);
      for (const step of phase.steps) {
        expect(step.name).toMatch(/^[A-Za-z][A-Za-z0-9]*$/);
        expect(['ExecuteBash', 'S3Download']).toContain(step.action);
      }
    }
    expect(bashSteps.map((s) => s.phase)).toContain('build');
    for (const { step } of bashSteps) {
      expect(commandsOf(step).length).toBeGreaterThan(0);
      for (const command of commandsOf(step)) expect(typeof command).toBe('string');
    }
  });

  it('has shell that passes shellcheck (parameters stand in as values)', () => {
    const files = Object.fromEntries(
      bashSteps.map(({ phase, step }) => [
        `${phase}-${step.name}.sh`,
        `#!/usr/bin/env bash\n${commandsOf(step)
          .join('\n')
          .replace(/\{\{ *(\w+) *\}\}/g, 'parameter-$1')}\n`,
      ]),
    );
    expect(shellcheck(files)).toBe('');
  });

  it("installs HTCondor's LTS series 25.0 from HTCondor's repository, then image/install.sh, and checks both", () => {
    expect(allShell).toMatch(/^series=25\.0$/m);
    expect(allShell).toContain(
      'dnf install -y "https://htcss-downloads.chtc.wisc.edu/repo/$series/htcondor-release-current.amzn2023.noarch.rpm"',
    );
    expect(allShell).toMatch(/^dnf install -y condor /m);
    expect(allShell).toMatch(/^bash image\/install\.sh --strict --api-url '\{\{ ApiUrl \}\}' \/$/m);
    const validate = document.phases
      .find((p) => p.name === 'validate')
      ?.steps.flatMap(commandsOf)
      .join('\n');
    expect(validate).toContain("grep -q '^[$]CondorVersion: 25[.]0[.]'");
    expect(validate).toContain('test ! -e /etc/condor/passwords.d/POOL');
  });

  it('is what serverless.yml inlines, with exactly the parameters the recipe passes, none secret', () => {
    const component = resource('AnnexImageComponent');
    expect(component.Type).toBe('AWS::ImageBuilder::Component');
    expect(component.Properties.Data).toBe(`\${file(./${documentPath})}`);
    const declared = (document.parameters ?? []).flatMap((p) => Object.keys(p)).sort();
    const used = [...new Set([...documentText.matchAll(/\{\{ *(\w+) *\}\}/g)].map((m) => m[1]))].sort();
    const recipe = resource('AnnexImageRecipe').Properties as {
      ParentImage: string;
      Components: { ComponentArn: unknown; Parameters: { Name: string }[] }[];
    };
    const passed = (recipe.Components[0]?.Parameters ?? []).map((p) => p.Name).sort();
    expect(declared).toEqual(['ApiUrl', 'AssetsUri']);
    expect(used).toEqual(declared);
    expect(passed).toEqual(declared);
    expect(recipe.ParentImage).toBe(
      'ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64',
    );
  });
});

describe('the image pipeline', () => {
  it('distributes the AMI to the parameter that every launching function resolves by default', () => {
    const parameter = config.custom.defaultImageParameter;
    expect(parameter).toMatch(/^\/imagebuilder\/annex\//);
    expect(config.custom.defaultImageId).toBe(
      "${env:ANNEX_DEFAULT_IMAGE_ID, 'resolve:ssm:${self:custom.defaultImageParameter}'}",
    );
    const distribution = resource('AnnexImageDistribution').Properties as {
      Distributions: { SsmParameterConfigurations: { ParameterName: string; DataType: string }[] }[];
    };
    expect(distribution.Distributions[0]?.SsmParameterConfigurations).toEqual([
      { ParameterName: '${self:custom.defaultImageParameter}', DataType: 'aws:ec2:image' },
    ]);

    const launchingRoles = Object.values(config.functions)
      .filter((f) => f.environment?.ANNEX_DEFAULT_IMAGE_ID !== undefined)
      .map((f) => f.role)
      .sort();
    const read = resource('DefaultImageParameterRead').Properties as {
      Roles: { Ref: string }[];
      PolicyDocument: { Statement: { Action: string[]; Resource: unknown }[] };
    };
    expect(read.Roles.map((r) => r.Ref).sort()).toEqual([...new Set(launchingRoles)]);
    expect(read.PolicyDocument.Statement).toEqual([
      {
        Effect: 'Allow',
        Action: ['ssm:GetParameters'],
        Resource: [
          {
            'Fn::Sub':
              'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${self:custom.defaultImageParameter}',
          },
        ],
      },
    ]);
  });

  it('builds on an instance whose profile reads no parameter and has no EC2 right', () => {
    const role = resource('ImageBuilderInstanceRole').Properties as {
      ManagedPolicyArns?: unknown;
      Policies: { PolicyDocument: { Statement: { Action: string[] }[] } }[];
    };
    expect(role.ManagedPolicyArns).toBeUndefined();
    const granted = role.Policies.flatMap((p) => p.PolicyDocument.Statement.flatMap((s) => s.Action));
    expect(granted.filter((a) => /^(ssm:Get|ec2:|kms:|iam:)/.test(a) || a.endsWith('*'))).toEqual([]);
    const infrastructure = resource('AnnexImageInfrastructure').Properties;
    expect(infrastructure.InstanceProfileName).toEqual({ Ref: 'ImageBuilderInstanceProfile' });
  });

  it('is started by scripts/build-image.sh, which uploads image/ where the recipe reads it and passes shellcheck', () => {
    const script = readFileSync(join(repoRoot, 'scripts/build-image.sh'), 'utf8');
    expect(shellcheck({ 'build-image.sh': script })).toBe('');
    expect(script).toContain('"s3://$bucket/image/annex-image.tar.gz"');
    expect(JSON.stringify(resource('AnnexImageRecipe').Properties)).toContain(
      's3://${ImageAssetsBucket}/image/annex-image.tar.gz',
    );
    expect(script).toContain('start-image-pipeline-execution');
  });
});
