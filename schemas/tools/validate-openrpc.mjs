// Checks sessiond's generated contract with third-party tools (run from anywhere):
//   - @open-rpc/schema-utils-js validates schemas/openrpc.json against the OpenRPC meta-schema
//     and dereferences it (every $ref must resolve);
//   - Ajv (draft 2020-12, with ajv-formats, strict mode, knowing the x-extends annotation)
//     compiles every schemas/*.json schema file and every params and result schema of the
//     dereferenced document.
// Exits non-zero listing every problem. Install first: npm ci --prefix schemas/tools
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { validateOpenRPCDocument, dereferenceDocument } = require("@open-rpc/schema-utils-js");
const Ajv2020 = require("ajv/dist/2020").default;
const addFormats = require("ajv-formats").default;

const schemasDir = join(dirname(fileURLToPath(import.meta.url)), "..");
const problems = [];

// x-extends (cmd/gen's extension) names the component whose members a component repeats, for
// the SDK generator; it constrains nothing, but strict mode refuses a keyword it does not know.
const extensionKeywords = ["x-extends"];

function newAjv() {
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
  addFormats(ajv);
  for (const keyword of extensionKeywords) {
    ajv.addKeyword(keyword);
  }
  return ajv;
}

// Every schema file compiles on its own as draft 2020-12.
const files = readdirSync(schemasDir).filter((f) => f.endsWith(".json") && f !== "openrpc.json").sort();
for (const file of files) {
  try {
    newAjv().compile(JSON.parse(readFileSync(join(schemasDir, file), "utf8")));
  } catch (e) {
    problems.push(`${file}: ${e.message}`);
  }
}

// The OpenRPC document is valid and dereferences.
const doc = JSON.parse(readFileSync(join(schemasDir, "openrpc.json"), "utf8"));
const valid = validateOpenRPCDocument(doc);
if (valid !== true) {
  problems.push(`openrpc.json: ${valid.message ?? valid}`);
}
let methods = 0;
try {
  const deref = await dereferenceDocument(structuredClone(doc));
  for (const m of deref.methods) {
    methods++;
    const parts = [...m.params.map((p) => [`param ${p.name}`, p.schema]), ["result", m.result.schema]];
    for (const [what, schema] of parts) {
      try {
        newAjv().compile(schema);
      } catch (e) {
        problems.push(`openrpc.json: ${m.name} ${what}: ${e.message}`);
      }
    }
  }
} catch (e) {
  problems.push(`openrpc.json: dereferenceDocument: ${e.message ?? e}`);
}

if (problems.length > 0) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(`ok: ${files.length} schema files compile (Ajv, draft 2020-12); openrpc.json is valid OpenRPC ${doc.openrpc} and dereferences (${methods} methods)`);
