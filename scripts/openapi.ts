// npm run openapi: writes docs/openapi.yaml from the API contract (shared/http/contract.ts).
// test/unit/docs/openapi.test.ts fails while the file is not what this writes.
import { writeFileSync } from 'node:fs';
import { OPENAPI_PATH, openApiYaml } from './devstack/openapi.ts';

writeFileSync(OPENAPI_PATH, await openApiYaml());
console.log(`wrote ${OPENAPI_PATH}`);
