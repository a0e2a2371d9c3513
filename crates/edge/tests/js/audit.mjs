// Runs graphql-http's server audit against a GraphQL-over-HTTP endpoint; prints every result and
// exits non-zero when a MUST fails. Usage: node audit.mjs http://127.0.0.1:8080/graphql
import { auditServer } from 'graphql-http';

const url = process.argv[2];
const results = await auditServer({ url });
let failed = 0;
for (const result of results) {
  const line = `${result.status.padEnd(7)} ${result.name}`;
  if (result.status === 'error' || (result.status === 'warn' && result.name.startsWith('MUST'))) {
    failed++;
    console.error(`${line}: ${result.reason}`);
  } else {
    console.log(result.status === 'ok' ? line : `${line}: ${result.reason}`);
  }
}
console.log(`${results.filter((r) => r.status === 'ok').length} ok, ${results.filter((r) => r.status === 'warn').length} warnings, ${failed} MUST failures`);
process.exit(failed ? 1 : 0);
