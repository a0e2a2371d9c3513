// Builds a schema from SDL files with graphql-js and runs validateSchema on each; prints every
// error and exits non-zero if there is any. Usage: node validate-schema.mjs <file.graphql>...
import { readFileSync } from 'node:fs';
import { buildSchema, validateSchema } from 'graphql';

let failed = false;
for (const file of process.argv.slice(2)) {
  try {
    const schema = buildSchema(readFileSync(file, 'utf8'));
    const errors = validateSchema(schema);
    for (const error of errors) {
      console.error(`${file}: ${error.message}`);
      failed = true;
    }
    if (errors.length === 0) console.log(`${file}: valid`);
  } catch (error) {
    console.error(`${file}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
