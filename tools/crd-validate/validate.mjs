#!/usr/bin/env node
// Offline validation of rendered CustomResource manifests against their CRD schemas.
//
//     node tools/crd-validate/validate.mjs FILE...      validate every document of each file
//     node tools/crd-validate/validate.mjs --list       known kinds (each model loaded) and built-in
//                                                       groups, as JSON
//
// Each CustomResource is checked twice, like `kubernetes-validate --strict` checks built-in kinds:
//   1. the schema: the model class of its apiVersion/kind (published @kubernetes-models packages,
//      generated from the upstream API types) runs its compiled OpenAPI validator (`validate()`);
//   2. strict: every field must be declared by that schema. The packages ship only compiled
//      validators (no JSON schema), so the validator itself is the source of truth: it runs on a
//      proxy that records which fields it looks up. A compiled validator looks up each property
//      its schema declares (and every key of a map), so a field present in the object but never
//      looked up in an object whose schema declares properties is not in the schema. An object
//      the validator looks into for nothing is free-form in the schema (no declared properties,
//      e.g. x-kubernetes-preserve-unknown-fields) and is accepted as a whole.
//
// One line per file (per document, `FILE#N`, when a file holds several):
//     PASS <file> <apiVersion>/<kind>
//     SKIP <file> <apiVersion>/<kind> (built-in: kubernetes-validate checks it)
//     FAIL <file> <apiVersion>/<kind>: <reason>; <reason>...
// Exit 0 when nothing failed, 1 when a document failed or is a CustomResource of a kind with no
// known schema, 2 for usage errors.
//
// A new CustomResource kind is one line in CUSTOM_RESOURCES (plus its package in package.json).

import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

/** API groups served by Kubernetes itself (1.33), whose schemas kubernetes-validate has. */
const BUILT_IN_GROUPS = Object.freeze([
  "", // core: apiVersion "v1"
  "admissionregistration.k8s.io",
  "apiextensions.k8s.io",
  "apiregistration.k8s.io",
  "apps",
  "authentication.k8s.io",
  "authorization.k8s.io",
  "autoscaling",
  "batch",
  "certificates.k8s.io",
  "coordination.k8s.io",
  "discovery.k8s.io",
  "events.k8s.io",
  "flowcontrol.apiserver.k8s.io",
  "internal.apiserver.k8s.io",
  "networking.k8s.io",
  "node.k8s.io",
  "policy",
  "rbac.authorization.k8s.io",
  "resource.k8s.io",
  "scheduling.k8s.io",
  "storage.k8s.io",
  "storagemigration.k8s.io",
]);

/** apiVersion, kind, and the package module whose export named `kind` is the model class. */
const CUSTOM_RESOURCES = Object.freeze([
  // external-secrets.io: @kubernetes-models/external-secrets, External Secrets Operator API types
  ["external-secrets.io/v1", "SecretStore", "@kubernetes-models/external-secrets/external-secrets.io/v1/SecretStore"],
  ["external-secrets.io/v1", "ExternalSecret", "@kubernetes-models/external-secrets/external-secrets.io/v1/ExternalSecret"],
  // generators.external-secrets.io: the same package, the operator's generators (a random password)
  ["generators.external-secrets.io/v1alpha1", "Password", "@kubernetes-models/external-secrets/generators.external-secrets.io/v1alpha1/Password"],
  // autoscaling.k8s.io: @kubernetes-models/autoscaler, Vertical Pod Autoscaler API types
  ["autoscaling.k8s.io/v1", "VerticalPodAutoscaler", "@kubernetes-models/autoscaler/autoscaling.k8s.io/v1/VerticalPodAutoscaler"],
]);

const USAGE = "usage: node validate.mjs FILE... | --list";
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

const builtInGroups = new Set(BUILT_IN_GROUPS);
const models = new Map(CUSTOM_RESOURCES.map(([apiVersion, kind, module]) => [`${apiVersion}/${kind}`, { kind, module }]));

function groupOf(apiVersion) {
  const slash = apiVersion.lastIndexOf("/");
  return slash < 0 ? "" : apiVersion.slice(0, slash);
}

async function modelClass(apiVersion, kind) {
  const entry = models.get(`${apiVersion}/${kind}`);
  if (!entry) return undefined;
  const loaded = await import(entry.module);
  const cls = loaded[entry.kind];
  if (typeof cls?.prototype?.validate !== "function") {
    throw new Error(`${entry.module} exports no model class ${entry.kind}`);
  }
  return cls;
}

/** Wrap `root` so that every property the validator looks up is recorded, per object. */
function recordLookups(root) {
  const lookups = new Map(); // object -> { path, keys looked up }
  const proxies = new WeakMap();
  const wrap = (target, path) => {
    if (target === null || typeof target !== "object") return target;
    const known = proxies.get(target);
    if (known) return known;
    const seen = { path, keys: new Set() };
    lookups.set(target, seen);
    const proxy = new Proxy(target, {
      get(object, key, receiver) {
        const value = Reflect.get(object, key, receiver);
        if (typeof key !== "string") return value;
        seen.keys.add(key);
        return Object.hasOwn(object, key) ? wrap(value, `${path}/${key}`) : value;
      },
      has(object, key) {
        if (typeof key === "string") seen.keys.add(key);
        return Reflect.has(object, key);
      },
    });
    proxies.set(target, proxy);
    return proxy;
  };
  const unknownFields = () => {
    const unknown = [];
    for (const [object, { path, keys }] of lookups) {
      if (Array.isArray(object) || keys.size === 0) continue; // arrays; free-form objects
      for (const key of Object.keys(object)) {
        if (!keys.has(key)) unknown.push(`${path}/${key}`);
      }
    }
    return unknown.sort();
  };
  return { proxy: wrap(root, ""), unknownFields };
}

function schemaErrors(error) {
  if (!Array.isArray(error?.errors)) throw error; // not a validation error: a bug, let it show
  const messages = error.errors.map((e) => {
    const allowed = e.params?.allowedValues ? ` ${JSON.stringify(e.params.allowedValues)}` : "";
    return `${e.instancePath || "/"}: ${e.message ?? e.keyword}${allowed}`;
  });
  return [...new Set(messages)];
}

/** Check one document: [status, detail] with status PASS, SKIP or FAIL. */
async function check(document) {
  if (document === null || typeof document !== "object" || Array.isArray(document)) {
    return ["FAIL", "the document is not a mapping"];
  }
  const { apiVersion, kind } = document;
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !apiVersion || !kind) {
    return ["FAIL", "apiVersion and kind must be non-empty strings"];
  }
  const id = `${apiVersion}/${kind}`;
  if (builtInGroups.has(groupOf(apiVersion))) {
    return ["SKIP", `${id} (built-in: kubernetes-validate checks it)`];
  }
  const Model = await modelClass(apiVersion, kind);
  if (!Model) {
    return ["FAIL", `${id}: CustomResource kind with no known schema (add it to CUSTOM_RESOURCES in validate.mjs)`];
  }
  const model = new Model(document);
  const { proxy, unknownFields } = recordLookups(model);
  let problems = [];
  try {
    Model.prototype.validate.call(proxy);
  } catch (error) {
    problems = schemaErrors(error);
  }
  problems.push(...unknownFields().map((field) => `${field}: unknown field (not in the schema)`));
  return problems.length ? ["FAIL", `${id}: ${problems.join("; ")}`] : ["PASS", id];
}

/** YAML as the API server reads it (YAML 1.1: unquoted Off is false), without timestamps. */
function parse(text) {
  const documents = parseAllDocuments(text, {
    version: "1.1",
    customTags: (tags) => tags.filter((tag) => tag.tag !== "tag:yaml.org,2002:timestamp"),
  });
  const errors = documents.flatMap((d) => d.errors.map((e) => e.message.split("\n")[0].replace(/:$/, "")));
  if (errors.length) throw new Error(`invalid YAML: ${errors.join("; ")}`);
  return documents.map((d) => d.toJS()).filter((d) => d !== null && d !== undefined);
}

async function checkFile(file) {
  let documents;
  try {
    documents = parse(readFileSync(file, "utf8"));
  } catch (error) {
    return [["FAIL", file, error.code ? `cannot read: ${error.message}` : error.message]];
  }
  if (documents.length === 0) return [["FAIL", file, "no YAML document"]];
  const lines = [];
  for (const [index, document] of documents.entries()) {
    const name = documents.length === 1 ? file : `${file}#${index + 1}`;
    const [status, detail] = await check(document);
    lines.push([status, name, detail]);
  }
  return lines;
}

async function main(args) {
  if (args.length === 1 && (args[0] === "-h" || args[0] === "--help")) {
    console.log(USAGE);
    return 0;
  }
  if (args.length === 1 && args[0] === "--list") {
    const customResources = [];
    for (const [apiVersion, kind] of CUSTOM_RESOURCES) {
      await modelClass(apiVersion, kind); // throws if the table names a model its package lacks
      customResources.push(`${apiVersion}/${kind}`);
    }
    console.log(JSON.stringify({ customResources, builtInGroups: BUILT_IN_GROUPS }, null, 2));
    return 0;
  }
  const files = args[0] === "--" ? args.slice(1) : args;
  const option = files === args ? files.find((a) => a.startsWith("-")) : undefined;
  if (files.length === 0 || option !== undefined) {
    console.error(option === undefined ? USAGE : `unknown option ${option}\n${USAGE}`);
    return EXIT_USAGE;
  }
  const counts = { PASS: 0, SKIP: 0, FAIL: 0 };
  for (const file of files) {
    for (const [status, name, detail] of await checkFile(file)) {
      counts[status] += 1;
      console.log(`${status} ${name} ${detail}`);
    }
  }
  console.error(`crd-validate: pass=${counts.PASS} skip=${counts.SKIP} fail=${counts.FAIL}`);
  return counts.FAIL ? EXIT_FAILED : 0;
}

process.exitCode = await main(process.argv.slice(2));
